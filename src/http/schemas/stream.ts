import { Type, type Static } from '@sinclair/typebox';
import { COMPRESSION_HEADERS, Seq, TimeRangeQuery, Topic } from './primitives.js';

const MAX_TOPICS = 64;

export const StreamQuerySchema = Type.Object(
  {
    topic: Type.Optional(Type.Array(Topic, { maxItems: MAX_TOPICS, description: 'Repeatable; absent: every topic' })),
    after: Type.Optional(Seq({ description: 'Start after this seq; 0: from the oldest. Absent: only new events' })),
    ...TimeRangeQuery,
    consumer: Type.Optional(Type.String({
      description: 'Start after this durable consumer\'s committed position, over its topics (a topic given too narrows them)',
    })),
  },
  { additionalProperties: false },
);
export type StreamQuery = Static<typeof StreamQuerySchema>;

/** Documentation only: the stream is written to the socket, each write flushed through gzip when asked for. */
export const StreamResponseSchema = Type.String({ description: 'text/event-stream', headers: COMPRESSION_HEADERS });
