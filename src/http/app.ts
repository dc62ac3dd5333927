import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { PublishError } from '../pipeline/errors.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { EventReader } from '../store/store.js';
import { registerJsonBodyParser } from './json-body.js';
import { eventsRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { publishRoutes } from './routes/publish.js';
import { statsRoutes } from './routes/stats.js';

export interface AppDeps {
  config: Config;
  log: Logger;
  pipeline: Pipeline;
  reader: EventReader;
}

/** Requests refused before they reached the pipeline; nothing of them is stored or counted as received. */
export interface RejectionCounters {
  invalid: number;
}

export function buildApp({ config, log, pipeline, reader }: AppDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: config.bodyLimit,
    // One log line per request would dwarf the events themselves at tens of thousands of requests/s.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  });

  registerJsonBodyParser(app);
  app.setErrorHandler((error, request, reply) => {
    if (error instanceof PublishError) {
      if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
      return reply.code(error.statusCode).send({
        statusCode: error.statusCode,
        error: error.statusCode === 503 ? 'Service Unavailable' : 'Payload Too Large',
        message: error.message,
      });
    }
    const statusCode = (error as { statusCode?: number }).statusCode ?? 500;
    if (statusCode >= 500) request.log.error({ err: error, url: request.url }, 'request failed');
    return reply.code(statusCode).send(error);
  });

  const startedAt = Date.now();
  const rejections: RejectionCounters = { invalid: 0 };
  app.register(publishRoutes, { pipeline, limits: config, rejections });
  app.register(eventsRoutes, { reader });
  app.register(statsRoutes, { pipeline, rejections, startedAt });
  app.register(healthRoutes, { pipeline });
  return app;
}
