import type { IncomingEvent } from '../../event.js';
import { eventDocAround } from '../event-doc.js';
import type { StreamItem } from '../sse-frames.js';

// The payload as its stored UTF-8 bytes: copied into the page as they are, never decoded and re-encoded.
export const COLUMNS = 'seq, topic, event_id AS eventId, timestamp, source, CAST(payload AS BLOB) AS payload, received_at AS receivedAt';

/**
 * A JSON array of `items` (each given as its UTF-8 parts) within `maxBytes`: it stops before the item that
 * would pass the cap, but always holds at least one, so a reader paging with after= always moves on. The
 * bytes are in a buffer of their own (never a pooled slab), so they can be transferred to another thread.
 */
export function jsonArrayWithin(items: Iterable<Uint8Array[]>, maxBytes: number): { page: Uint8Array; count: number } {
  const taken: Uint8Array[] = [];
  let bytes = 1; // '['
  let count = 0;
  for (const parts of items) {
    let size = 1; // the ',' or ']' after the item
    for (const part of parts) size += part.byteLength;
    if (taken.length > 0 && bytes + size > maxBytes) break;
    if (taken.length > 0) taken.push(COMMA);
    taken.push(...parts);
    bytes += size;
    count++;
  }
  // Each item counted the ',' or ']' after it; an empty page is just "[]".
  const page = Buffer.allocUnsafeSlow(taken.length > 0 ? bytes : 2);
  let at = 0;
  for (const part of [OPEN, ...taken, CLOSE]) {
    page.set(part, at);
    at += part.byteLength;
  }
  return { page, count };
}
const OPEN = Buffer.from('[');
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']');

export type Row = Omit<IncomingEvent, 'payload'> & { seq: number; payload: Buffer };

/** An /events item as UTF-8 parts around the stored payload bytes. */
function itemParts(row: Row): Uint8Array[] {
  const [head, tail] = eventDocAround(row);
  return [Buffer.from(`{"seq":${row.seq},${head.slice(1)}`), row.payload, Buffer.from(tail)];
}

/** The rows with a seq below `before` (undefined: all of them): read in seq order, they stop at the first past it. */
export function* below(rows: Iterable<Row>, before: number | undefined): Generator<Row> {
  for (const row of rows) {
    if (before !== undefined && row.seq >= before) return;
    yield row;
  }
}

export function* items(rows: Iterable<Row>): Generator<Uint8Array[]> {
  for (const row of rows) yield itemParts(row);
}

/** The same items for a stream page, with the seq and topic it indexes them by. */
export function* streamItems(rows: Iterable<Row>): Generator<StreamItem> {
  for (const row of rows) yield { seq: row.seq, topic: row.topic, parts: itemParts(row) };
}
