import Database from 'better-sqlite3';
import type { IncomingEvent } from '../event.js';
import { eventDoc } from './postgres-schema.js';
import type { EventPageQuery, TopicPageQuery } from './store.js';

const COLUMNS = 'seq, topic, event_id AS eventId, timestamp, source, payload, received_at AS receivedAt';

/**
 * The text of a JSON array of `items` within `maxBytes` of UTF-8: it stops before the item that would pass
 * the cap, but always holds at least one, so a reader paging with after= always moves on.
 */
export function jsonArrayWithin(items: Iterable<string>, maxBytes: number): string {
  const taken: string[] = [];
  let bytes = 1;
  for (const item of items) {
    const size = Buffer.byteLength(item) + 1; // the item and the ',' or ']' after it
    if (taken.length > 0 && bytes + size > maxBytes) break;
    taken.push(item);
    bytes += size;
  }
  return `[${taken.join(',')}]`;
}

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

  constructor(path: string, private readonly maxPageBytes: number) {
    this.db = new Database(path, { readonly: true, fileMustExist: true });
    this.all = this.db.prepare<[number, number], Row>(`SELECT ${COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?`);
    this.byTopic = this.db.prepare<[string, number, number], Row>(
      `SELECT ${COLUMNS} FROM events WHERE topic = ? AND seq > ? ORDER BY seq LIMIT ?`);
    this.topicPage = this.db.prepare<[string, number], { topic: string; events: number }>(
      'SELECT topic, events FROM topics WHERE topic > ? ORDER BY topic LIMIT ?');
  }

  page({ topic, after, limit }: EventPageQuery): string {
    // Rows are read lazily: reading stops at the byte cap, whatever `limit` asked for.
    const rows = topic === undefined ? this.all.iterate(after, limit) : this.byTopic.iterate(topic, after, limit);
    return jsonArrayWithin(items(rows), this.maxPageBytes);
  }

  topics({ after, limit }: TopicPageQuery): string {
    return JSON.stringify(this.topicPage.all(after, limit));
  }

  close(): void {
    this.db.close();
  }
}

type Row = IncomingEvent & { seq: number };

function* items(rows: Iterable<Row>): Generator<string> {
  for (const row of rows) yield `{"seq":${row.seq},${eventDoc(row).slice(1)}`;
}
