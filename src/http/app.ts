import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import { purgesAnything } from '../retention.js';
import { PurgeCheck } from '../stream/purge-check.js';
import type { EventReader } from '../store/store.js';
import type { CommitSignal } from '../stream/commit-signal.js';
import { accessControl } from './access/auth.js';
import { tokenAccessControl } from './access/scoped-access.js';
import type { TokenRegistry } from './access/token-registry.js';
import { registerContentEncoding } from './body/content-encoding.js';
import { ApiError, replyToClientError, replyWithError } from './errors.js';
import { Metrics, metricsRoutes } from './metrics.js';
import { registerOpenApi } from './openapi.js';
import { SHARED_SCHEMA_COMPILERS } from './schema-compilers.js';
import { VERSION } from '../version.js';
import { registerJsonBodyParser } from './body/json-body.js';
import { registerNdjsonBodyParser } from './body/ndjson-body.js';
import type { RejectionCounters } from './rejections.js';
import { IDENTITY_FORMAT_CHECKS, isRfc3339DateTime } from '../event-rules.js';
import { ConsumerLagCache } from './consumer-lag.js';
import { consumerRoutes } from './routes/consumers.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { eventsRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { publishRoutes } from './routes/publish.js';
import { otlpRoutes } from './routes/otlp.js';
import { OtlpDecoder } from './otlp/otlp-decoder.js';
import { statsRoutes } from './routes/stats.js';
import { readStoreFigures } from './store-figures.js';
import { streamRoutes } from './routes/stream.js';
import { SubscriberHub } from '../stream/hub.js';
import { RangeEnds } from '../stream/time-range.js';
import { topicsRoutes } from './routes/topics.js';

export interface AppDeps {
  config: Config;
  log: Logger;
  pipeline: Pipeline;
  reader: EventReader;
  /** Raised when new events may be readable: wakes subscribers and long-polls. */
  commits: CommitSignal;
  /** AUTH_TOKENS_FILE's tokens, when set: they replace AUTH_TOKEN and AUTH_READ_TOKEN. */
  tokens?: TokenRegistry | undefined;
}

/*
 * Stream reads: catch-up pages large enough for read speed (written out in small copies), the shared feed's
 * small, since every member that stalls keeps the page it last got; a live subscriber may leave this much
 * untaken before it drops to reading at its own pace. A PostgreSQL page is one statement with about 2 ms of
 * fixed work (planning, the commit and purge horizons), which a page of 256 KiB spread at 3 µs an event,
 * more than its rows cost: its catch-up pages are 4 times larger (issue 21).
 */
const STREAM_LIMITS = {
  pageLimit: 1_000, pageBytes: 256 * 1024, livePageBytes: 64 * 1024, maxLiveBuffered: 64 * 1024,
};
const POSTGRES_CATCH_UP_PAGES = { pageLimit: 4_000, pageBytes: 1024 * 1024 };

export function buildApp({ config, log, pipeline, reader, commits, tokens }: AppDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: config.bodyLimit,
    ajv: {
      customOptions: { formats: IDENTITY_FORMAT_CHECKS },
      // After ajv-formats, whose date-time allows a leap second: every time input follows publish's `timestamp` rule.
      onCreate: (ajv) => ajv.addFormat('date-time', isRfc3339DateTime),
    },
    schemaController: SHARED_SCHEMA_COMPILERS,
    // One log line per request would dwarf the events themselves at tens of thousands of requests/s.
    logController: new LogController({ disableRequestLogging: true }),
    // Slow clients: a request must arrive whole within requestTimeoutMs; idle keep-alive sockets close.
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    http: {
      // Given here as well: Node checks headersTimeout against its own requestTimeout when the server is created.
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: config.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1_000, config.requestTimeoutMs),
    },
    // Fastify's own 503 for a request reaching a stopping server has no code and no Retry-After: ours below.
    return503OnClosing: false,
    // Room for any name a request line can carry (Node takes 16 KiB of headers), so that a name too long
    // gets the name rule's 400 rather than the router's 414.
    routerOptions: { maxParamLength: 16 * 1024 },
    // The router's and Node's parser's own refusals answer in the one error shape too.
    frameworkErrors: replyWithError,
    clientErrorHandler: replyToClientError,
  });

  registerContentEncoding(app, config.bodyLimit);
  registerJsonBodyParser(app);
  registerNdjsonBodyParser(app, config);
  registerOpenApi(app, VERSION);
  app.setErrorHandler(replyWithError);
  app.setNotFoundHandler((request) => {
    throw new ApiError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`);
  });
  // A request that reaches the server while it stops (on a kept-alive connection) is turned away before any work.
  let stopping = false;
  app.addHook('preClose', async () => {
    stopping = true;
  });
  app.addHook('onRequest', async () => {
    if (stopping) throw new ApiError('SHUTTING_DOWN', 'the server is stopping; retry on another replica or after the restart', { retryAfterSeconds: 1 });
  });

  app.decorateRequest('grant', undefined);
  app.addHook('onRequest', tokens
    ? tokenAccessControl(tokens)
    : accessControl({ publish: config.authToken, read: config.authReadToken, reads: config.authReads }));

  const startedAt = Date.now();
  const rejections: RejectionCounters = { invalid: 0 };
  const readOptions = { reader, stallTimeoutMs: config.requestTimeoutMs, maxPageBytes: config.maxPageBytes };
  // Purges run in this process's consumer under its own policy; on a shared store, in any replica's under theirs.
  const purging = config.store === 'postgres' || purgesAnything({ rules: config.retention, dedupWindowMs: config.dedupWindowMs });
  const purges = new PurgeCheck(reader, purging);
  app.register(publishRoutes, { pipeline, limits: config, rejections });
  const otlpDecoder = new OtlpDecoder({
    topicAttribute: config.otlpTopicAttribute, defaultTopic: config.otlpDefaultTopic,
    maxEventsPerRequest: config.maxEventsPerRequest, maxPayloadBytes: config.maxPayloadBytes,
  }, log);
  app.addHook('onClose', async () => otlpDecoder.close());
  app.register(otlpRoutes, { pipeline, decoder: otlpDecoder, rejections });
  // Ends of time ranges (until=), remembered once found, for /events, streams and consumer pages alike.
  const ranges = new RangeEnds(reader);
  app.register(eventsRoutes, { ...readOptions, purges, ranges });
  const hub = new SubscriberHub(
    reader, purges, commits, {
      ...STREAM_LIMITS, ...(config.store === 'postgres' && POSTGRES_CATCH_UP_PAGES), stallTimeoutMs: config.requestTimeoutMs, keepAliveMs: config.sseKeepAliveMs, maxSubscribers: config.maxSubscribers,
      readAheadBytes: config.streamReadAheadBytes,
    }, log);
  app.register(streamRoutes, { reader, hub, ranges, maxSubscribers: config.maxSubscribers });
  app.register(topicsRoutes, readOptions);
  const lags = new ConsumerLagCache(reader, commits, log);
  app.addHook('onClose', async () => lags.close());
  app.register(consumerRoutes, {
    pipeline, reader, commits, lags, purges, ranges, maxConsumers: config.maxConsumers, stallTimeoutMs: config.requestTimeoutMs,
  });
  const subscribers = () => hub.size;
  const storeFigures = readStoreFigures(pipeline, reader, commits, log);
  app.addHook('onClose', async () => storeFigures.close());
  app.register(statsRoutes, { pipeline, storeFigures, rejections, startedAt, replicaId: config.replicaId, consumers: lags, subscribers, reader });
  app.register(healthRoutes, { pipeline });
  app.register(dashboardRoutes);
  const metrics = new Metrics(pipeline, storeFigures, rejections, config, lags, hub);
  app.addHook('onResponse', metrics.observeRequest);
  app.addHook('onClose', async () => metrics.close());
  app.register(metricsRoutes, { metrics });
  return app;
}
