import type { StreamItem } from '../sse-frames.js';
import type { Part } from '../../lib/byte-builder.js';

/**
 * Each row's /events item, built by SQLite as UTF-8 bytes: the stored doc's shape (eventDocAround) with the
 * seq first, the payload's stored text embedded as it is (never re-parsed), each string through json_quote,
 * which escapes exactly as JSON.stringify does. One buffer per row, instead of a JS object of its columns
 * and five JSON.stringify calls, takes about half the reader's CPU of a page.
 */
const ITEM = `CAST('{"seq":' || seq || ',"topic":' || json_quote(topic) || ',"event_id":' || json_quote(event_id)
  || ',"timestamp":' || json_quote(timestamp) || ',"source":' || json_quote(source) || ',"payload":' || payload
  || ',"received_at":' || json_quote(received_at) || '}' AS BLOB)`;
export const COLUMNS = `seq, topic, ${ITEM} AS item`;

export interface Row {
  seq: number;
  topic: string;
  /** The /events item's UTF-8 bytes (ITEM). */
  item: Buffer;
}

/** The rows with a seq below `before` (undefined: all of them): read in seq order, they stop at the first past it. */
export function* below(rows: Iterable<Row>, before: number | undefined): Generator<Row> {
  for (const row of rows) {
    if (before !== undefined && row.seq >= before) return;
    yield row;
  }
}

export function* items(rows: Iterable<Row>): Generator<Part[]> {
  for (const row of rows) yield [row.item];
}

/** The same items for a stream page, with the seq and topic it indexes them by. */
export function* streamItems(rows: Iterable<Row>): Generator<StreamItem> {
  for (const row of rows) yield { seq: row.seq, topic: row.topic, parts: [row.item] };
}
