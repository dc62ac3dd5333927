import type { IncomingEvent } from '../event.js';

/*
 * The one shape of a stored event as readers get it: PostgreSQL builds /events items here, once, into its
 * doc column; SQLite builds the same bytes in SQL as it pages (ITEM in sqlite/sqlite-page.ts). A test holds
 * real pages of both to StoredEventSchema, the response schema in src/http/schemas/events.ts, and to
 * eventDoc byte for byte.
 */

/**
 * The stored document of an event: the item /events serves, without its seq, in two parts around the
 * payload, which goes in as the exact JSON text it was accepted as (never re-parsed).
 */
export function eventDocAround(e: Omit<IncomingEvent, 'payload'>): [head: string, tail: string] {
  return [
    `{"topic":${JSON.stringify(e.topic)},"event_id":${JSON.stringify(e.eventId)},"timestamp":${JSON.stringify(e.timestamp)},`
      + `"source":${JSON.stringify(e.source)},"payload":`,
    `,"received_at":${JSON.stringify(e.receivedAt)}}`,
  ];
}

/** The stored document of an event, whole. */
export function eventDoc(e: IncomingEvent): string {
  const [head, tail] = eventDocAround(e);
  return head + e.payload + tail;
}

/** An event's /events item is this, then its stored doc after the doc's `{`. */
export const itemHead = (seq: number | string): string => `{"seq":${seq},`;
