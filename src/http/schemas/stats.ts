import { Type, type Static } from '@sinclair/typebox';
import { TopicDetailSchema } from '../../store/topic-detail.js';
import { Count } from './primitives.js';

/** A figure the writer reports after its first upkeep step; null until then. */
const reported = (description: string) => Type.Union([Count(description), Type.Null()]);

export const StatsSchema = Type.Object({
  received: Count('Events accepted, store-wide (durable)'),
  unique_processed: Count('Events ever stored (first arrivals), purged ones included: received = unique_processed + duplicate_dropped'),
  duplicate_dropped: Count('Events dropped as duplicates'),
  topics: Type.Array(Type.String(), {
    description: 'At most 100 topics: those with the most retained events, most first (with an access token that is not admin: of the topics it may read)',
  }),
  topic_events: Type.Record(Type.String(), Count('Retained events'), { description: 'The retained events of each of `topics`' }),
  topic_details: Type.Array(TopicDetailSchema, {
    description: 'The figures of each of `topics`, in the same order, as read at `store.as_of` (re-read in the background, at most ~2 s old); a topic not listed then is left out',
  }),
  topic_count: Count('How many topics there are (with an access token that is not admin: that it may read)'),
  uptime: Type.String(),
  uptime_seconds: Count('Seconds since this replica started'),
  queue_depth: Count('Events in the ring not yet committed'),
  pending_acks: Count('Publish requests waiting for their commit'),
  ring: Type.Object({ used_bytes: Count(), capacity_bytes: Count(), fill_ratio: Type.Number() }, { additionalProperties: false }),
  consumer: Type.Object({
    ready: Type.Boolean(),
    reason: Type.Union([Type.String(), Type.Null()], { description: 'Why it is not ready' }),
    restarts: Count('Consumer worker restarts after a crash'),
    batches: Count('Batches committed since it started'),
    last_batch_size: Count(),
    last_commit_ms: Type.Number(),
  }, { additionalProperties: false }),
  consumers: Type.Object({
    count: Count('Durable consumers'),
    max_lag: Count('The largest lag among them'),
    as_of: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'When the lags were read' }),
  }, { additionalProperties: false }),
  subscribers: Count('Open /events/stream connections on this replica'),
  rejected: Type.Object({ invalid_requests: Count(), queue_full: Count() }, { additionalProperties: false }),
  store: Type.Object({
    disk_bytes: Type.Union([Count(), Type.Null()], {
      description: 'Bytes the store takes on disk (SQLite: the database, its WAL and the sealed key files), as read at `as_of`; null before the first read',
    }),
    as_of: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'When disk_bytes and topic_details were read' }),
    dedup_keys: reported('Keys the dedup index holds, purged events\' keys included'),
    index_memory_bytes: reported('Memory the dedup index takes'),
    hot_keys: reported('Keys in its in-memory tables (the newest)'),
    segments: reported('Sealed on-disk key segments'),
    last_purge: Type.Union([Type.Object({
      at: Type.String({ format: 'date-time', description: 'When it ended' }),
      events: Count('Events it purged'),
      duration_ms: Type.Number({ minimum: 0 }),
      total: Count('Events purged since the store was created'),
    }, { additionalProperties: false }), Type.Null()], { description: 'The last purge that deleted anything; null: none yet' }),
  }, { additionalProperties: false }),
  replica: Type.Object({
    id: Type.String(), received: Count('Events this replica accepted since it started'), queue_depth: Count(), uptime_seconds: Count(),
  }, { additionalProperties: false, description: 'The replica that answers; every other figure is store-wide' }),
}, { additionalProperties: false });
export type Stats = Static<typeof StatsSchema>;
