import { FormatRegistry, Type, type Static } from '@sinclair/typebox';
import { isRfc3339DateTime } from './timestamp.js';

FormatRegistry.Set('date-time', isRfc3339DateTime);

/*
 * Identity strings. Each rule says why a string is refused (or undefined), and the same rule is the
 * schema's format check, so the compiled validator and the 400's reason never disagree. They are
 * formats, not patterns, because TypeBox compiles `pattern` without the `u` flag (no \p{...}).
 */
const LONE_SURROGATE = /\p{Cs}/u;
const CONTROL = /\p{Cc}/u;
/** General Category Cf: bidi controls (U+202E), zero-width characters (U+200B..U+200D, U+2060), U+FEFF, ... */
const FORMAT_CHARACTER = /\p{Cf}/u;

function found(value: string, at: number): string {
  return `U+${value.codePointAt(at)!.toString(16).toUpperCase().padStart(4, '0')} at index ${at}`;
}

/**
 * Well-formed Unicode: an unpaired surrogate cannot be written as UTF-8, so the ring, the stores and the
 * logs would each turn it into U+FFFD and merge distinct ids into one.
 */
function wellFormedProblem(value: string): string | undefined {
  if (value.isWellFormed()) return undefined;
  return `must be well-formed Unicode: ${found(value, value.search(LONE_SURROGATE))} is an unpaired surrogate`;
}

/** A name people read: format characters would make it display as another name in logs and the dashboard. */
function nameProblem(value: string): string | undefined {
  const problem = wellFormedProblem(value);
  if (problem !== undefined) return problem;
  const at = value.search(FORMAT_CHARACTER);
  return at < 0 ? undefined : `must not contain format characters (bidi controls, zero-width): ${found(value, at)}`;
}

/** Why a topic is refused, or undefined; for any place that takes a topic (a query parameter too). */
export function topicProblem(value: string): string | undefined {
  const problem = nameProblem(value);
  if (problem !== undefined) return problem;
  // C0 and C1 control characters (newlines, tabs, escapes) have no place in a name operators read.
  const at = value.search(CONTROL);
  return at < 0 ? undefined : `must not contain control characters: ${found(value, at)}`;
}

/** The string formats of the identity fields, by name: why a value is refused, or undefined. */
export const IDENTITY_FORMATS: Record<string, (value: string) => string | undefined> = {
  'well-formed': wellFormedProblem,
  name: nameProblem,
  topic: topicProblem,
};
/** The same formats as checks: for TypeBox here, and for Fastify's Ajv, so `Topic` works in a querystring too. */
export const IDENTITY_FORMAT_CHECKS = Object.fromEntries(
  Object.entries(IDENTITY_FORMATS).map(([format, problem]) => [format, (value: string) => problem(value) === undefined]),
);
for (const [format, check] of Object.entries(IDENTITY_FORMAT_CHECKS)) FormatRegistry.Set(format, check);

/** A topic: reuse it wherever a topic is accepted. */
export const Topic = Type.String({
  minLength: 1,
  maxLength: 255,
  format: 'topic',
  description: 'Topic name, 1-255 characters of well-formed Unicode, no control or format characters',
});

const name = (format: 'well-formed' | 'name', description: string) =>
  Type.String({ minLength: 1, maxLength: 255, format, description });

/** One published event. Unknown fields are refused: silently accepting them hides publisher bugs. */
export const EventSchema = Type.Object(
  {
    topic: Topic,
    event_id: name('well-formed', 'Publisher-chosen id, well-formed Unicode; (topic, event_id) identifies the event'),
    timestamp: Type.String({
      format: 'date-time',
      description: 'RFC 3339 date-time with a zone, e.g. 2026-11-24T10:00:00.123Z',
      'x-error-message': 'must be an RFC 3339 date-time with a zone (Z or ±hh:mm) on a real calendar date',
    }),
    source: name('name', 'The publishing service, well-formed Unicode, no format characters'),
    payload: Type.Object({}, {
      additionalProperties: true,
      description: 'Any JSON object (size-bounded); numbers must be exact doubles and keys unique, so it reads back as sent',
    }),
  },
  { additionalProperties: false },
);
export type EventBody = Static<typeof EventSchema>;

export const PublishQuerySchema = Type.Object({
  ack: Type.Optional(
    Type.Union([Type.Literal('committed'), Type.Literal('queued')], {
      description: 'committed (default): 200 once stored; queued: 202 once in the queue',
    }),
  ),
});

export const EventsQuerySchema = Type.Object(
  {
    topic: Type.Optional(Topic),
    after: Type.Integer({
      minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0, description: 'Return events with seq greater than this',
    }),
    limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
  },
  { additionalProperties: false },
);
export type EventsQuery = Static<typeof EventsQuerySchema>;

const example = makeExampleEvent();
function makeExampleEvent() {
  return {
    topic: 'orders.eu', event_id: '7f3c9a2e-51d4-4c1b-9b1e-2f6a0c8d4e11', timestamp: '2026-11-24T10:00:00.123Z',
    source: 'checkout-svc', payload: { order: 'A-1042', amount: 42.5, currency: 'EUR' },
  };
}

/** The three accepted body shapes, for the OpenAPI document (validation runs in publish-body.ts). */
export const PublishBodySchema = Type.Union(
  [EventSchema, Type.Array(EventSchema), Type.Object({ events: Type.Array(EventSchema) }, { additionalProperties: false })],
  {
    description: 'One event, an array of events, or {"events": [...]}. All-or-nothing: one invalid event refuses the request.',
    'x-examples': {
      single: { summary: 'One event', value: example },
      array: { summary: 'An array of events', value: [example, { ...example, event_id: 'b61c0e8e-0f5a-4a63-a1f2-3c9f3c1d7a20' }] },
      envelope: { summary: '{"events": [...]}', value: { events: [example] } },
    },
  },
);

export const CommittedSchema = Type.Object(
  {
    accepted: Type.Integer({ description: 'Events in the request' }),
    unique: Type.Integer({ description: 'Events stored for the first time' }),
    duplicates: Type.Integer({ description: 'Events whose (topic, event_id) was already stored' }),
  },
  { description: 'Every event is committed', examples: [{ accepted: 3, unique: 2, duplicates: 1 }] },
);

export const QueuedSchema = Type.Object(
  { accepted: Type.Integer(), queued: Type.Literal(true) },
  { description: 'Queued (?ack=queued); committed shortly, lost only with the process', examples: [{ accepted: 3, queued: true }] },
);

/** Every error answer: Fastify's shape, plus the per-event problems of a refused publish. */
export const ErrorSchema = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String({ description: 'Stable cause of the error; see docs/errors.md' }),
  error: Type.String(),
  message: Type.String(),
  errors: Type.Optional(Type.Array(Type.Object({ index: Type.Integer(), field: Type.String(), reason: Type.String() }))),
});

const errorExample = (statusCode: number, error: string, code: string, message: string, extra = {}) =>
  Type.Object(ErrorSchema.properties, { description: message, examples: [{ statusCode, error, code, message, ...extra }] });

export const PublishErrorResponses = {
  400: errorExample(400, 'Bad Request', 'INVALID_EVENT', '1 of 2 events are invalid; nothing was stored', {
    errors: [{ index: 1, field: 'timestamp', reason: 'must be an RFC 3339 date-time with a zone (Z or ±hh:mm) on a real calendar date' }],
  }),
  401: errorExample(401, 'Unauthorized', 'UNAUTHORIZED', 'this route needs Authorization: Bearer <AUTH_TOKEN>'),
  413: errorExample(413, 'Payload Too Large', 'TOO_MANY_EVENTS', 'the request has 20000 events; at most 10000 are accepted per request'),
  415: errorExample(415, 'Unsupported Media Type', 'UNSUPPORTED_MEDIA_TYPE', 'Unsupported Media Type'),
  429: errorExample(429, 'Too Many Requests', 'TOPIC_LIMIT',
    'the request would add 1 new topic(s) to the 100000 there are; at most 100000 are allowed (MAX_TOPICS)'),
  503: errorExample(503, 'Service Unavailable', 'QUEUE_FULL', 'the queue is full: the consumer is behind; retry later'),
};

export const StoredEventSchema = Type.Object({
  seq: Type.Integer({ description: 'Commit sequence number, strictly increasing' }),
  ...EventSchema.properties,
  received_at: Type.String({ format: 'date-time', description: 'When the aggregator accepted the request' }),
});
