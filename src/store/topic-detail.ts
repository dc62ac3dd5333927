import { Type, type Static } from '@sinclair/typebox';

/*
 * Its own module, apart from store.ts: the store's threads use only the type, which the compiler erases,
 * so they never load TypeBox (~100 ms of a worker's start); the HTTP side's /stats schema uses the value.
 */

const count = (description: string) => Type.Integer({ minimum: 0, description });

/** One topic's figures, as /stats answers them (src/http/schemas/stats.ts). */
export const TopicDetailSchema = Type.Object({
  topic: Type.String(),
  events: count('Retained (not purged) events'),
  bytes: count('UTF-8 bytes of their ids, sources, payloads and timestamps (PostgreSQL: of their stored JSON docs)'),
  first_seq: count('The oldest retained seq; 0 when none is retained'),
  last_seq: count('The newest retained seq; 0 when none is retained'),
  oldest_received_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'received_at of the oldest retained event' }),
  purged_through: count('The highest seq of the topic purged by retention; 0 when none was'),
}, { additionalProperties: false });
export type TopicDetail = Static<typeof TopicDetailSchema>;
