import { Type } from '@sinclair/typebox';
import { EventSchema } from '../../event.js';
import { errorExample } from './primitives.js';

/* POST /publish and POST /v1/logs: the query, the bodies (documented; validated in body/publish-body.ts) and the answers. */

export const PublishQuerySchema = Type.Object({
  ack: Type.Optional(
    Type.Union([Type.Literal('committed'), Type.Literal('queued')], {
      description: 'committed (default): 200 once stored; queued: 202 once in the queue',
    }),
  ),
});

const example = {
  topic: 'orders.eu', event_id: '7f3c9a2e-51d4-4c1b-9b1e-2f6a0c8d4e11', timestamp: '2026-11-24T10:00:00.123Z',
  source: 'checkout-svc', payload: { order: 'A-1042', amount: 42.5, currency: 'EUR' },
};

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

export const PublishErrorResponses = {
  400: errorExample(400, 'Bad Request', 'INVALID_EVENT', '1 of 2 events are invalid; nothing was stored', {
    errors: [{ index: 1, field: 'timestamp', reason: 'must be an RFC 3339 date-time with a zone (Z or ±hh:mm) on a real calendar date' }],
  }),
  401: errorExample(401, 'Unauthorized', 'UNAUTHORIZED', 'this route needs Authorization: Bearer <AUTH_TOKEN>'),
  403: errorExample(403, 'Forbidden', 'TOPIC_FORBIDDEN', 'token orders-writer may not publish to topic "billing.eu"'),
  413: errorExample(413, 'Payload Too Large', 'TOO_MANY_EVENTS', 'the request has 20000 events; at most 10000 are accepted per request'),
  415: errorExample(415, 'Unsupported Media Type', 'UNSUPPORTED_MEDIA_TYPE', 'Unsupported Media Type'),
  429: errorExample(429, 'Too Many Requests', 'TOPIC_LIMIT',
    'the request would add 1 new topic(s) to the 100000 there are; at most 100000 are allowed (MAX_TOPICS)'),
  503: errorExample(503, 'Service Unavailable', 'QUEUE_FULL', 'the queue is full: the consumer is behind; retry later'),
};
