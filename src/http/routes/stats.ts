import type { FastifyPluginAsync } from 'fastify';
import type { Pipeline } from '../../pipeline/pipeline.js';
import type { ConsumerLagCache } from '../../subscribe/consumer-lag.js';
import type { RejectionCounters } from '../rejections.js';

interface StatsOptions {
  pipeline: Pipeline;
  rejections: RejectionCounters;
  startedAt: number;
  replicaId: string;
  /** Durable consumers' lags, refreshed in the background: /stats never reads the store. */
  consumers: ConsumerLagCache;
  /** Open /events/stream connections on this replica. */
  subscribers: () => number;
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

/** GET /stats: answered from the consumer's latest snapshot and the ring's counters, never from disk. */
export const statsRoutes: FastifyPluginAsync<StatsOptions> = async (app, { pipeline, rejections, startedAt, replicaId, consumers, subscribers }) => {
  app.get('/stats', async () => {
    const stats = pipeline.stats();
    const top = pipeline.topTopics();
    const uptimeSeconds = Math.floor((Date.now() - startedAt) / 1000);
    const durable = consumers.summary();
    return {
      received: stats.received,
      unique_processed: stats.counters.uniqueProcessed,
      duplicate_dropped: stats.counters.duplicateDropped,
      // Bounded whatever the topic count: the TOP_TOPICS topics with the most events, and how many there are.
      topics: top.map(([topic]) => topic),
      topic_events: Object.fromEntries(top),
      topic_count: stats.topicCount,
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
      // The figures above are store-wide (all replicas sharing a PostgreSQL store); these are this one's.
      replica: { id: replicaId, received: stats.replicaReceived, queue_depth: stats.queueDepth, uptime_seconds: uptimeSeconds },
    };
  });
};
