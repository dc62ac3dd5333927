import type { IncomingEvent } from '../../event.js';
import { eventDocAround } from '../event-doc.js';
import type { StreamItem } from '../sse-frames.js';
import { ByteBuilder, type Part } from '../../lib/byte-builder.js';

// The payload as its stored UTF-8 bytes: copied into the page as they are, never decoded and re-encoded.
export const COLUMNS = 'seq, topic, event_id AS eventId, timestamp, source, CAST(payload AS BLOB) AS payload, received_at AS receivedAt';

/** A page's first allocation: most pages are far smaller than their cap. */
const FIRST_BYTES = 64 * 1024;

/**
 * A JSON array of `items` (each given as its parts) within `maxBytes`: it stops before the item that would
 * pass the cap, but always holds at least one, so a reader paging with after= always moves on. The bytes
 * are in a buffer of their own (never a pooled slab), so they can be transferred to another thread.
 */
export function jsonArrayWithin(items: Iterable<Part[]>, maxBytes: number): { page: Uint8Array; count: number } {
  const out = new ByteBuilder(Math.min(maxBytes, FIRST_BYTES));
  out.text('[');
  let count = 0;
  for (const parts of items) {
    const before = out.length;
    if (count > 0) out.text(',');
    for (const part of parts) out.append(part);
    // Each item counts the ',' or ']' after it.
    if (count > 0 && out.length + 1 > maxBytes) {
      out.truncate(before);
      break;
    }
    count++;
  }
  out.text(']');
  return { page: out.take(), count };
}

export type Row = Omit<IncomingEvent, 'payload'> & { seq: number; payload: Buffer };

/** An /events item as text around the stored payload bytes. */
function itemParts(row: Row): Part[] {
  const [head, tail] = eventDocAround(row);
  return [`{"seq":${row.seq},${head.slice(1)}`, row.payload, tail];
}

export function* items(rows: Iterable<Row>): Generator<Part[]> {
  for (const row of rows) yield itemParts(row);
}

/** The same items for a stream page, with the seq and topic it indexes them by. */
export function* streamItems(rows: Iterable<Row>): Generator<StreamItem> {
  for (const row of rows) yield { seq: row.seq, topic: row.topic, parts: itemParts(row) };
}
