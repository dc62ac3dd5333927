import { FormatRegistry, Type, type Static } from '@sinclair/typebox';
import { isRfc3339DateTime } from './timestamp.js';

FormatRegistry.Set('date-time', isRfc3339DateTime);

const name = (description: string) => Type.String({ minLength: 1, maxLength: 255, description });

/** One published event. Unknown fields are refused: silently accepting them hides publisher bugs. */
export const EventSchema = Type.Object(
  {
    topic: Type.String({
      minLength: 1,
      maxLength: 255,
      // C0 and C1 control characters (newlines, tabs, escapes) have no place in a name operators read.
      pattern: '^[^\\u0000-\\u001F\\u007F-\\u009F]*$',
      description: 'Topic name, 1-255 characters, no control characters',
      errorMessage: 'must not contain control characters',
    }),
    event_id: name('Publisher-chosen id; (topic, event_id) identifies the event'),
    timestamp: Type.String({
      format: 'date-time',
      description: 'RFC 3339 date-time with a zone, e.g. 2026-11-24T10:00:00.123Z',
      errorMessage: 'must be an RFC 3339 date-time with a zone (Z or ±hh:mm) on a real calendar date',
    }),
    source: name('The publishing service'),
    payload: Type.Object({}, { additionalProperties: true, description: 'Any JSON object (size-bounded)' }),
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
    topic: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    after: Type.Integer({ minimum: 0, default: 0, description: 'Return events with seq greater than this' }),
    limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
  },
  { additionalProperties: false },
);
export type EventsQuery = Static<typeof EventsQuerySchema>;
