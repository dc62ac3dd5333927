import { Type, type Static } from '@sinclair/typebox';
// The formats the schema names (identity rules, RFC 3339) are registered by this import.
import './event-rules.js';

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

/** An event as a publisher sends it, after validation. */
export type PublishedEvent = Static<typeof EventSchema>;

/** An accepted event on its way to the store: the payload already serialized, the arrival time stamped. */
export interface IncomingEvent {
  topic: string;
  eventId: string;
  timestamp: string;
  source: string;
  /** The payload as JSON text, exactly as it will be stored. */
  payload: string;
  /** ISO 8601 time at which the aggregator accepted the request. */
  receivedAt: string;
}
