import { Type, type Static } from '@sinclair/typebox';
import type { ConsumerRecord, ConsumerStatus } from '../../store/consumers.js';
import { PURGED_THROUGH_HEADER, RANGE_END_HEADER, RangeEndHeader, StoredEventSchema } from './events.js';
import { COMPRESSION_HEADERS, Count, Nullable, PageLimit, Seq, TimeRangeQuery, Topic } from './primitives.js';

/** The longest a consumer's page may wait for an event (`wait_ms`). */
export const MAX_WAIT_MS = 30_000;
/** Topics one consumer may read: each is read through its own index range when a page is built. */
const MAX_CONSUMER_TOPICS = 100;

export const ParamsSchema = Type.Object({ name: Type.String({ description: '1–128 characters of [A-Za-z0-9._-], not "." or ".."' }) });

const StartSchema = Type.Union([Type.Literal('earliest'), Type.Literal('latest'), Seq()], {
  description: 'earliest: from the first event; latest: after the last one visible now; a seq: after it',
});

export const DefinitionSchema = Type.Object({
  topics: Type.Optional(Type.Array(Topic, { maxItems: MAX_CONSUMER_TOPICS, description: 'Absent or empty: every topic' })),
  start: StartSchema,
}, { additionalProperties: false });

export const PollQuerySchema = Type.Object({
  limit: PageLimit,
  wait_ms: Type.Integer({ minimum: 0, maximum: MAX_WAIT_MS, default: 0, description: 'Long-poll: wait this long for an event when there is none' }),
  ...TimeRangeQuery,
}, { additionalProperties: false });

export const CommitSchema = Type.Object({ seq: Seq() }, { additionalProperties: false });
export const CommitQuerySchema = Type.Object({
  rewind: Type.Boolean({ default: false, description: 'Allow moving the position backwards (replay)' }),
}, { additionalProperties: false });

const time = (description: string) => Type.String({ format: 'date-time', description });

/** A consumer as every /consumers route answers it; `lag` and `oldest_unconsumed_at` where the answer reads them. */
export const ConsumerSchema = Type.Object({
  name: Type.String(),
  topics: Nullable(Type.Array(Type.String()), 'Its topics, sorted; null: every topic'),
  start: StartSchema,
  position: Count('The committed position: every matching event up to this seq is acknowledged'),
  owner: Nullable(Type.String(), 'The access token that created it (AUTH_TOKENS_FILE); null: created without one'),
  created_at: time('When it was created'),
  last_commit_at: Nullable(time('When its position was last committed'), 'null: never'),
  // Last: the serializer (fast-json-stringify) writes required properties before optional ones, so this is the wire order.
  lag: Type.Optional(Count('Matching events after the position')),
  oldest_unconsumed_at: Type.Optional(Nullable(time('received_at of the first of them'), 'null when there are none')),
}, { additionalProperties: false });
export type ConsumerJson = Static<typeof ConsumerSchema>;

/** A consumer as the store holds it (camelCase), as the API answers it (snake_case): the one mapping. */
export function consumerJson(c: ConsumerRecord | ConsumerStatus): ConsumerJson {
  return {
    name: c.name, topics: c.topics, start: c.start, position: c.position, owner: c.owner,
    created_at: c.createdAt, last_commit_at: c.lastCommitAt,
    ...('lag' in c ? { lag: c.lag, oldest_unconsumed_at: c.oldestUnconsumedAt } : {}),
  };
}

export const ConsumerListSchema = Type.Array(ConsumerSchema);

export const ConsumerPageSchema = Type.Object({
  events: Type.Array(StoredEventSchema),
  next: Seq({ description: 'The position to commit to acknowledge every event of the page' }),
  end: Type.Optional(Type.Boolean({
    description: 'With until= only: true when the page holds nothing because every event of the range up to its end was '
      + 'committed (an event received after `until` is stored, and none of the consumer\'s topics lies between its position and it)',
  })),
}, {
  headers: {
    ...COMPRESSION_HEADERS,
    [PURGED_THROUGH_HEADER]: Type.Integer({ description: 'Present only when events after the position were purged' }),
    [RANGE_END_HEADER]: RangeEndHeader,
  },
});
