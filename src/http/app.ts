import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { EventReader } from '../store/store.js';
import { requireBearer } from './auth.js';
import { ApiError, replyWithError } from './errors.js';
import { Metrics, metricsRoutes } from './metrics.js';
import { registerOpenApi } from './openapi.js';
import { VERSION } from '../version.js';
import { registerJsonBodyParser } from './json-body.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { eventsRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { publishRoutes } from './routes/publish.js';
import { statsRoutes } from './routes/stats.js';
import { topicsRoutes } from './routes/topics.js';

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
    // Slow clients: a request must arrive whole within requestTimeoutMs; idle keep-alive sockets close.
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    http: {
      headersTimeout: config.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1_000, config.requestTimeoutMs),
    },
    return503OnClosing: true,
  });

  registerJsonBodyParser(app);
  registerOpenApi(app, VERSION);
  app.setErrorHandler(replyWithError);
  app.setNotFoundHandler((request) => {
    throw new ApiError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`);
  });

  const startedAt = Date.now();
  const rejections: RejectionCounters = { invalid: 0 };
  const readRoutes: FastifyPluginAsync = async (scope) => {
    const readOptions = { reader, stallTimeoutMs: config.requestTimeoutMs, maxPageBytes: config.maxPageBytes };
    scope.register(eventsRoutes, readOptions);
    scope.register(topicsRoutes, readOptions);
    scope.register(statsRoutes, { pipeline, rejections, startedAt, replicaId: config.replicaId });
  };
  // Routes registered inside this scope need the token (when one is set); encapsulation keeps the hook
  // away from the others.
  app.register(async (guarded) => {
    if (config.authToken) guarded.addHook('onRequest', requireBearer(config.authToken));
    guarded.register(publishRoutes, { pipeline, limits: config, rejections });
    if (config.authReads) guarded.register(readRoutes);
  });
  if (!config.authReads) app.register(readRoutes);
  app.register(healthRoutes, { pipeline });
  app.register(dashboardRoutes);
  const metrics = new Metrics(pipeline, rejections, config);
  app.addHook('onResponse', metrics.observeRequest);
  app.register(metricsRoutes, { metrics });
  return app;
}
