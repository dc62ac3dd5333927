import Database from 'better-sqlite3';
import type { IncomingEvent } from '../event.js';
import { eventDocAround } from './event-doc.js';
import { sseFrames, type StreamItem } from './sse-frames.js';
import type { EventPageQuery, StreamPage, StreamPageQuery, TopicPageQuery } from './store.js';

// The payload as its stored UTF-8 bytes: copied into the page as they are, never decoded and re-encoded.
const COLUMNS = 'seq, topic, event_id AS eventId, timestamp, source, CAST(payload AS BLOB) AS payload, received_at AS receivedAt';

/**
 * A JSON array of `items` (each given as its UTF-8 parts) within `maxBytes`: it stops before the item that
 * would pass the cap, but always holds at least one, so a reader paging with after= always moves on. The
 * bytes are in a buffer of their own (never a pooled slab), so they can be transferred to another thread.
 */
export function jsonArrayWithin(items: Iterable<Uint8Array[]>, maxBytes: number): Uint8Array {
  const taken: Uint8Array[] = [];
  let bytes = 1; // '['
  for (const parts of items) {
    let size = 1; // the ',' or ']' after the item
    for (const part of parts) size += part.byteLength;
    if (taken.length > 0 && bytes + size > maxBytes) break;
    if (taken.length > 0) taken.push(COMMA);
    taken.push(...parts);
    bytes += size;
  }
  // Each item counted the ',' or ']' after it; an empty page is just "[]".
  const page = Buffer.allocUnsafeSlow(taken.length > 0 ? bytes : 2);
  let at = 0;
  for (const part of [OPEN, ...taken, CLOSE]) {
    page.set(part, at);
    at += part.byteLength;
  }
  return page;
}
const OPEN = Buffer.from('[');
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']');

/**
 * /events and /topics on SQLite, run by the reader worker (workers/reader.ts) on a read-only connection of
 * its own: in WAL mode it reads committed data while the consumer writes. Pages are built here, each
 * stored payload embedded as the exact text it was stored as (never re-parsed), in the same item shape
 * as PostgreSQL's stored docs.
 */
export class SqlitePageReader {
  private readonly db: Database.Database;
  private readonly all;
  private readonly byTopic;
  private readonly topicPage;
  private readonly inTopics;
  private readonly last;
  private readonly firstSince;

  constructor(path: string, private readonly maxPageBytes: number) {
    this.db = new Database(path, { readonly: true, fileMustExist: true });
    this.all = this.db.prepare<[number, number], Row>(`SELECT ${COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?`);
    this.byTopic = this.db.prepare<[string, number, number], Row>(
      `SELECT ${COLUMNS} FROM events WHERE topic = ? AND seq > ? ORDER BY seq LIMIT ?`);
    this.topicPage = this.db.prepare<[string, number], { topic: string; events: number }>(
      'SELECT topic, events FROM topics WHERE topic > ? ORDER BY topic LIMIT ?');
    this.inTopics = this.db.prepare<[string, number, number], Row>(
      `SELECT ${COLUMNS} FROM events WHERE topic IN (SELECT value FROM json_each(?)) AND seq > ? ORDER BY seq LIMIT ?`);
    this.last = this.db.prepare<[], number>('SELECT coalesce(max(seq), 0) FROM events').pluck();
    // Served by the (received_at, seq) index: the cost grows with the events received since then, not the store.
    this.firstSince = this.db.prepare<[string], number | null>('SELECT min(seq) FROM events WHERE received_at >= ?').pluck();
  }

  page({ topic, after, limit }: EventPageQuery): Uint8Array {
    // Rows are read lazily: reading stops at the byte cap, whatever `limit` asked for.
    const rows = topic === undefined ? this.all.iterate(after, limit) : this.byTopic.iterate(topic, after, limit);
    return jsonArrayWithin(items(rows), this.maxPageBytes);
  }

  streamPage({ topics, after, limit, maxBytes }: StreamPageQuery): StreamPage {
    // Read before the page: an empty page then means nothing matching up to here, so the cursor may move on.
    const end = Math.max(after, this.last.get()!);
    const rows = topics === undefined ? this.all.iterate(after, limit)
      : topics.length === 1 ? this.byTopic.iterate(topics[0]!, after, limit)
        : this.inTopics.iterate(JSON.stringify(topics), after, limit);
    return sseFrames(streamItems(rows), maxBytes, end);
  }

  startAfter(since: string | undefined): number {
    const first = since === undefined ? null : (this.firstSince.get(since) ?? null);
    return first === null ? this.last.get()! : first - 1;
  }

  topics({ after, limit }: TopicPageQuery): Uint8Array {
    return jsonArrayWithin(this.topicPage.all(after, limit).map((row) => [Buffer.from(JSON.stringify(row))]), Infinity);
  }

  close(): void {
    this.db.close();
  }
}

type Row = Omit<IncomingEvent, 'payload'> & { seq: number; payload: Buffer };

/** An /events item as UTF-8 parts around the stored payload bytes. */
function itemParts(row: Row): Uint8Array[] {
  const [head, tail] = eventDocAround(row);
  return [Buffer.from(`{"seq":${row.seq},${head.slice(1)}`), row.payload, Buffer.from(tail)];
}

function* items(rows: Iterable<Row>): Generator<Uint8Array[]> {
  for (const row of rows) yield itemParts(row);
}

function* streamItems(rows: Iterable<Row>): Generator<StreamItem> {
  for (const row of rows) yield { seq: row.seq, topic: row.topic, parts: itemParts(row) };
}
