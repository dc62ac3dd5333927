import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Pipeline } from '../../pipeline/pipeline.js';
import type { BackgroundRead } from '../../lib/background-read.js';
import type { EventReader, TopicDetail } from '../../store/store.js';
import type { ConsumerLagCache } from '../consumer-lag.js';
import type { StoreFigures } from '../store-figures.js';
import type { RejectionCounters } from '../rejections.js';
import { readScope } from '../access/scoped-access.js';

interface StatsOptions {
  pipeline: Pipeline;
  /** The store's figures, refreshed in the background. */
  storeFigures: BackgroundRead<StoreFigures>;
  rejections: RejectionCounters;
  startedAt: number;
  replicaId: string;
  /** Durable consumers' lags, refreshed in the background: /stats never reads the store for them. */
  consumers: ConsumerLagCache;
  /** Open /events/stream connections on this replica. */
  subscribers: () => number;
  /** For an access token's own topics' figures. */
  reader: EventReader;
}

/** "1h2m3s"-style uptime for people; uptime_seconds is there for machines. */
export function formatUptime(totalSeconds: number): string {
  const units: [number, string][] = [[86_400, 'd'], [3_600, 'h'], [60, 'm']];
  let rest = totalSeconds;
  let text = '';
  for (const [size, unit] of units) {
    if (rest >= size || text) text += `${Math.floor(rest / size)}${unit}`;
    rest %= size;
  }
  return `${text}${rest}s`;
}

const count = (description?: string) => Type.Integer({ minimum: 0, ...(description && { description }) });
/** A figure the writer reports after its first upkeep step; null until then. */
const reported = (description: string) => Type.Union([count(description), Type.Null()]);

export const TopicDetailSchema = Type.Object({
  topic: Type.String(),
  events: count('Retained (not purged) events'),
  bytes: count('UTF-8 bytes of their ids, sources, payloads and timestamps'),
  first_seq: count('The oldest retained seq; 0 when none is retained'),
  last_seq: count('The newest retained seq; 0 when none is retained'),
  oldest_received_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'received_at of the oldest retained event' }),
  purged_through: count('The highest seq of the topic purged by retention; 0 when none was'),
}, { additionalProperties: false });

export const StatsSchema = Type.Object({
  received: count('Events accepted, store-wide (durable)'),
  unique_processed: count('Events ever stored (first arrivals), purged ones included: received = unique_processed + duplicate_dropped'),
  duplicate_dropped: count('Events dropped as duplicates'),
  topics: Type.Array(Type.String(), {
    description: 'At most 100 topics: those with the most retained events, most first (with an access token that is not admin: of the topics it may read)',
  }),
  topic_events: Type.Record(Type.String(), count('Retained events'), { description: 'The retained events of each of `topics`' }),
  topic_details: Type.Array(TopicDetailSchema, {
    description: 'The figures of each of `topics`, in the same order, as read at `store.as_of` (re-read in the background, at most ~2 s old); a topic not listed then is left out',
  }),
  topic_count: count('How many topics there are (with an access token that is not admin: that it may read)'),
  uptime: Type.String(),
  uptime_seconds: count('Seconds since this replica started'),
  queue_depth: count('Events in the ring not yet committed'),
  pending_acks: count('Publish requests waiting for their commit'),
  ring: Type.Object({ used_bytes: count(), capacity_bytes: count(), fill_ratio: Type.Number() }, { additionalProperties: false }),
  consumer: Type.Object({
    ready: Type.Boolean(),
    reason: Type.Union([Type.String(), Type.Null()], { description: 'Why it is not ready' }),
    restarts: count('Consumer worker restarts after a crash'),
    batches: count('Batches committed since it started'),
    last_batch_size: count(),
    last_commit_ms: Type.Number(),
  }, { additionalProperties: false }),
  consumers: Type.Object({
    count: count('Durable consumers'),
    max_lag: count('The largest lag among them'),
    as_of: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'When the lags were read' }),
  }, { additionalProperties: false }),
  subscribers: count('Open /events/stream connections on this replica'),
  rejected: Type.Object({ invalid_requests: count(), queue_full: count() }, { additionalProperties: false }),
  store: Type.Object({
    disk_bytes: Type.Union([count(), Type.Null()], {
      description: 'Bytes the store takes on disk (SQLite: the database, its WAL and the sealed key files), as read at `as_of`; null before the first read',
    }),
    as_of: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'When disk_bytes and topic_details were read' }),
    dedup_keys: reported('Keys the dedup index holds, purged events\' keys included'),
    index_memory_bytes: reported('Memory the dedup index takes'),
    hot_keys: reported('Keys in its in-memory tables (the newest)'),
    segments: reported('Sealed on-disk key segments'),
    last_purge: Type.Union([Type.Object({
      at: Type.String({ format: 'date-time', description: 'When it ended' }),
      events: count('Events it purged'),
      duration_ms: Type.Number({ minimum: 0 }),
      total: count('Events purged since the store was created'),
    }, { additionalProperties: false }), Type.Null()], { description: 'The last purge that deleted anything; null: none yet' }),
  }, { additionalProperties: false }),
  replica: Type.Object({
    id: Type.String(), received: count('Events this replica accepted since it started'), queue_depth: count(), uptime_seconds: count(),
  }, { additionalProperties: false, description: 'The replica that answers; every other figure is store-wide' }),
}, { additionalProperties: false });

/**
 * GET /stats, from memory only: counters from the writer's latest report and the ring, and the store's
 * figures as last read in the background.
 */
export const statsRoutes: FastifyPluginAsyncTypebox<StatsOptions> = async (
  app, { pipeline, storeFigures, rejections, startedAt, replicaId, consumers, subscribers, reader },
) => {
  app.get('/stats', { schema: { summary: 'Counters, topics, the store and this replica', response: { 200: StatsSchema } } }, async (request) => {
    const stats = pipeline.stats();
    const scope = readScope(request);
    // A token that may read only some topics sees only those: its own top list, their figures read now.
    const scoped = scope?.filter !== undefined ? pipeline.topTopicsWhere((topic) => scope.allows(topic)) : undefined;
    const top = scoped?.top ?? pipeline.topTopics();
    const names = top.map(([topic]) => topic);
    const { diskBytes } = storeFigures.value;
    const details = scoped ? await reader.topicDetails(names) : storeFigures.value.details;
    const uptimeSeconds = Math.floor((Date.now() - startedAt) / 1000);
    const durable = consumers.summary();
    const { index, lastPurge } = stats;
    return {
      received: stats.received,
      unique_processed: stats.counters.uniqueProcessed,
      duplicate_dropped: stats.counters.duplicateDropped,
      // Bounded whatever the topic count: the TOP_TOPICS topics with the most events, and how many there are.
      topics: names,
      topic_events: Object.fromEntries(top),
      topic_details: inOrder(names, details),
      topic_count: scoped?.count ?? stats.topicCount,
      uptime: formatUptime(uptimeSeconds),
      uptime_seconds: uptimeSeconds,
      queue_depth: stats.queueDepth,
      pending_acks: stats.pendingAcks,
      ring: {
        used_bytes: stats.ringUsedBytes,
        capacity_bytes: stats.ringCapacityBytes,
        fill_ratio: stats.ringUsedBytes / stats.ringCapacityBytes,
      },
      consumer: {
        ready: stats.consumer.ready,
        reason: stats.consumer.reason ?? null,
        restarts: stats.consumer.restarts,
        batches: stats.consumer.batches,
        last_batch_size: stats.consumer.lastBatchSize,
        last_commit_ms: stats.consumer.lastCommitMs,
      },
      consumers: { count: durable.count, max_lag: durable.maxLag, as_of: durable.asOf },
      subscribers: subscribers(),
      rejected: { invalid_requests: rejections.invalid, queue_full: stats.rejectedQueueFull },
      store: {
        disk_bytes: diskBytes,
        as_of: storeFigures.asOf,
        dedup_keys: index?.keys ?? null,
        index_memory_bytes: index?.memoryBytes ?? null,
        hot_keys: index?.hotKeys ?? null,
        segments: index?.segments ?? null,
        last_purge: lastPurge ? { at: lastPurge.at, events: lastPurge.events, duration_ms: lastPurge.durationMs, total: lastPurge.total } : null,
      },
      // The figures above are store-wide (all replicas sharing a PostgreSQL store); these are this one's.
      replica: { id: replicaId, received: stats.replicaReceived, queue_depth: stats.queueDepth, uptime_seconds: uptimeSeconds },
    };
  });
};

/** The details of `names` in that order; a topic the store does not list (yet) is left out. */
function inOrder(names: readonly string[], details: readonly TopicDetail[]): TopicDetail[] {
  const byTopic = new Map(details.map((detail) => [detail.topic, detail]));
  return names.flatMap((name) => byTopic.get(name) ?? []);
}
