import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Pipeline } from '../../pipeline/pipeline.js';
import type { BackgroundRead } from '../../lib/background-read.js';
import type { EventReader, TopicDetail } from '../../store/store.js';
import type { ConsumerLagCache } from '../consumer-lag.js';
import type { StoreFigures } from '../store-figures.js';
import type { RejectionCounters } from '../rejections.js';
import { readScope } from '../access/scoped-access.js';
import { StatsSchema, type Stats } from '../schemas/stats.js';

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

/**
 * GET /stats, from memory only: counters from the writer's latest report and the ring, and the store's
 * figures as last read in the background.
 */
export const statsRoutes: FastifyPluginAsyncTypebox<StatsOptions> = async (
  app, { pipeline, storeFigures, rejections, startedAt, replicaId, consumers, subscribers, reader },
) => {
  app.get('/stats', { schema: { summary: 'Counters, topics, the store and this replica', response: { 200: StatsSchema } } }, async (request): Promise<Stats> => {
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
