import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Config } from '../config.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { BackgroundRead } from '../lib/background-read.js';
import type { ConsumerLagCache } from './consumer-lag.js';
import type { RejectionCounters } from './rejections.js';
import type { StoreFigures } from './store-figures.js';

/** The streams' figures (the SubscriberHub): open streams, the bytes of catch-up pages they hold, the pages they read. */
interface StreamFigures {
  readonly size: number;
  readonly readAhead: { readonly bytes: number };
  readonly catchUpPages: { readonly store: number; readonly shared: number };
}

/** How often the event-loop delay is sampled; a finer grain than prom-client's 10 ms, for a 5 ms target. */
const LOOP_DELAY_RESOLUTION_MS = 2;
const LOOP_DELAY_QUANTILES = [['p50', 50], ['p99', 99], ['max', 100]] as const;
type LoopDelay = Record<(typeof LOOP_DELAY_QUANTILES)[number][0], number>;

/*
 * Prometheus metrics. Labels stay bounded: route (the route pattern, not the raw URL), method and status
 * code; topics are never a label, since publishers choose them freely and every topic would become a
 * time series of its own. The top topics' counts are in /stats instead.
 */
export class Metrics {
  readonly registry = new Registry();
  /** The Prometheus text of every series, from one snapshot of the pipeline. */
  readonly scrape: () => Promise<string>;
  private readonly requestDuration: Histogram<'method' | 'route' | 'status_code'>;
  /** Requests per access token of AUTH_TOKENS_FILE, by its name: the file bounds the labels. */
  private readonly requestsByToken: Counter<'token'>;
  private readonly loopDelaySampler = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });

  constructor(
    pipeline: Pipeline, storeFigures: BackgroundRead<StoreFigures>, rejections: RejectionCounters, config: Config, consumers: ConsumerLagCache, streams: StreamFigures,
  ) {
    const registry = this.registry;
    // Replicas behind one load balancer are told apart by this label.
    registry.setDefaultLabels({ replica: config.replicaId });
    collectDefaultMetrics({ register: registry, prefix: 'aggregator_' });
    // These three are gauges whose names end in _total, which the exposition format reserves for counters
    // (promtool refuses them); the handles and requests they count are of little use here.
    for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) {
      registry.removeSingleMetric(`aggregator_nodejs_${name}`);
    }
    // One view of the pipeline per scrape, taken by scrape(), so every series of a scrape agrees.
    let scraped = pipeline.stats();
    const stats = () => scraped;
    this.loopDelaySampler.enable();
    let loopDelay = this.takeLoopDelay();
    this.scrape = () => {
      scraped = pipeline.stats();
      loopDelay = this.takeLoopDelay();
      return registry.metrics();
    };
    /** A counter whose value comes from the pipeline's durable snapshot at scrape time. */
    const snapshotCounter = (name: string, help: string, read: () => number) =>
      new Counter({ name, help, registers: [registry], collect() { this.reset(); this.inc(read()); } });
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({ name, help, registers: [registry], collect() { this.set(read()); } });

    snapshotCounter('aggregator_events_received_total', 'Events accepted into the queue (durable across restarts).', () => stats().received);
    snapshotCounter('aggregator_events_unique_total', 'Events stored: first arrival of their (topic, event_id).', () => stats().counters.uniqueProcessed);
    snapshotCounter('aggregator_events_duplicate_total', 'Events dropped as duplicates.', () => stats().counters.duplicateDropped);
    new Counter({
      name: 'aggregator_requests_rejected_total', help: 'Publish requests refused before the queue, by reason.',
      labelNames: ['reason'], registers: [registry],
      collect() {
        this.reset();
        this.inc({ reason: 'invalid' }, rejections.invalid);
        this.inc({ reason: 'queue_full' }, stats().rejectedQueueFull);
      },
    });
    // The three above are store-wide, the same on every replica of a shared store; this one is the replica's own.
    snapshotCounter('aggregator_replica_events_received_total', 'Events this replica accepted since it started.', () => stats().replicaReceived);
    snapshotCounter('aggregator_consumer_restarts_total', 'Consumer worker restarts after a crash.', () => stats().consumer.restarts);
    gauge('aggregator_consumer_ready', '1 while the consumer runs and the store commits.', () => Number(stats().consumer.ready));
    gauge('aggregator_queue_depth', 'Events in the ring not yet committed.', () => stats().queueDepth);
    gauge('aggregator_ring_used_bytes', 'Bytes of the ring in use.', () => stats().ringUsedBytes);
    gauge('aggregator_ring_capacity_bytes', 'Size of the ring.', () => stats().ringCapacityBytes);
    gauge('aggregator_pending_acks', 'Publish requests waiting for their commit.', () => stats().pendingAcks);
    gauge('aggregator_topics', 'Topics with stored events.', () => stats().topicCount);
    // Consumers are created explicitly and capped (MAX_CONSUMERS), so this label stays bounded, unlike topics.
    new Gauge({
      name: 'aggregator_consumer_lag', help: "Events a durable consumer has not committed yet (cached, refreshed in the background).",
      labelNames: ['consumer'], registers: [registry],
      collect() {
        this.reset();
        for (const { name, lag } of consumers.lags()) this.set({ consumer: name }, lag);
      },
    });
    gauge('aggregator_stream_subscribers', 'Open /events/stream connections on this replica.', () => streams.size);
    gauge('aggregator_stream_read_ahead_bytes', 'Bytes streams hold from STREAM_READ_AHEAD_BYTES: catch-up pages kept or read ahead, and what their clients have not taken past 64 KiB.',
      () => streams.readAhead.bytes);
    new Counter({
      name: 'aggregator_stream_catch_up_pages_total',
      help: 'Pages streams behind the shared feed took: read from the store, or shared from another stream\'s read of the same rows.',
      labelNames: ['read'], registers: [registry],
      collect() {
        this.reset();
        this.inc({ read: 'store' }, streams.catchUpPages.store);
        this.inc({ read: 'shared' }, streams.catchUpPages.shared);
      },
    });
    new Gauge({
      name: 'aggregator_store_disk_bytes', help: 'Bytes the store takes on disk (SQLite: the database, its WAL and the sealed key files).',
      registers: [registry],
      // Read in the background, as for /stats: a scrape never waits for the store.
      collect() {
        const bytes = storeFigures.value.diskBytes;
        if (bytes !== null) this.set(bytes);
      },
    });
    // The dedup index and retention, from the writer's last upkeep report (0 until its first).
    gauge('aggregator_dedup_keys', 'Keys the dedup index holds, purged events\' keys included.', () => stats().index?.keys ?? 0);
    gauge('aggregator_dedup_index_memory_bytes', 'Memory the dedup index takes.', () => stats().index?.memoryBytes ?? 0);
    gauge('aggregator_dedup_hot_keys', 'Keys in the dedup index\'s in-memory tables (the newest).', () => stats().index?.hotKeys ?? 0);
    gauge('aggregator_dedup_segments', 'Sealed on-disk segments of the dedup index.', () => stats().index?.segments ?? 0);
    snapshotCounter('aggregator_purged_events_total', 'Events purged by retention since the store was created.',
      () => stats().lastPurge?.total ?? 0);
    gauge('aggregator_last_purge_duration_seconds', 'Duration of the last purge that deleted anything.',
      () => (stats().lastPurge?.durationMs ?? 0) / 1000);
    gauge('aggregator_last_purge_timestamp_seconds', 'When the last purge that deleted anything ended (Unix time; 0: none yet).',
      () => {
        const last = stats().lastPurge;
        return last ? Date.parse(last.at) / 1000 : 0;
      });

    // The HTTP thread's event-loop delay since the previous scrape: how long a ready request could wait
    // before the thread got to it.
    for (const [name] of LOOP_DELAY_QUANTILES) {
      gauge(`aggregator_event_loop_delay_${name}_seconds`, `HTTP thread event-loop delay since the previous scrape: ${name}.`,
        () => loopDelay[name]);
    }

    const batchSize = new Histogram({
      name: 'aggregator_batch_size', help: 'Events per committed transaction.', registers: [registry],
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
    });
    const commitDuration = new Histogram({
      name: 'aggregator_commit_duration_seconds', help: 'Time of one batch transaction in the consumer.', registers: [registry],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    });
    // From the worker's report of a commit to the HTTP thread acting on it (acknowledging its publishes):
    // the hop back, which waits for this thread's event loop.
    const reportDelay = new Histogram({
      name: 'aggregator_commit_report_delay_seconds', help: 'From a commit\'s report by the consumer to the HTTP thread settling its publishes.',
      registers: [registry], buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
    });
    pipeline.on('commit', ({ records, commitMs, reportedAt }) => {
      batchSize.observe(records);
      commitDuration.observe(commitMs / 1000);
      reportDelay.observe(Math.max(0, performance.timeOrigin + performance.now() - reportedAt) / 1000);
    });
    this.requestDuration = new Histogram({
      name: 'aggregator_http_request_duration_seconds', help: 'HTTP request durations.', registers: [registry],
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    });
    this.requestsByToken = new Counter({
      name: 'aggregator_requests_by_token_total', help: 'Requests per access token of AUTH_TOKENS_FILE, by its name.',
      labelNames: ['token'], registers: [registry],
    });
  }

  close(): void {
    this.loopDelaySampler.disable();
  }

  /** The event-loop delay percentiles (seconds) since the last call, which starts the next period. */
  private takeLoopDelay(): LoopDelay {
    const sampler = this.loopDelaySampler;
    // Node records the whole sampling interval, not just how late it ended: that interval is taken off.
    const late = (percentile: number) =>
      sampler.count === 0 ? 0 : Math.max(0, sampler.percentile(percentile) / 1e6 - LOOP_DELAY_RESOLUTION_MS) / 1000;
    const taken = Object.fromEntries(LOOP_DELAY_QUANTILES.map(([name, percentile]) => [name, late(percentile)])) as LoopDelay;
    sampler.reset();
    return taken;
  }

  /** An onResponse hook. */
  readonly observeRequest = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (request.grant) this.requestsByToken.inc({ token: request.grant.name });
    this.requestDuration.observe(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: reply.statusCode },
      reply.elapsedTime / 1000,
    );
  };
}

/** GET /metrics in the Prometheus text format. */
export const metricsRoutes: FastifyPluginAsync<{ metrics: Metrics }> = async (app, { metrics }) => {
  app.get('/metrics', { config: { access: 'admin' } }, async (_request, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.scrape()));
};
