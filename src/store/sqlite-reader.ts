import Database from 'better-sqlite3';
import { SqliteConsumerReader } from './sqlite-consumer-reader.js';
import { COLUMNS, items, jsonArrayWithin, streamItems, type Row } from './sqlite-page.js';
import { sseFrames } from './sse-frames.js';
import type { EventPageQuery, StreamPage, StreamPageQuery, TopicPageQuery } from './store.js';

/**
 * /events and /topics on SQLite, run by the reader worker (workers/reader.ts) on a read-only connection of
 * its own: in WAL mode it reads committed data while the consumer writes. Pages are built here, each
 * stored payload embedded as the exact text it was stored as (never re-parsed), in the same item shape
 * as PostgreSQL's stored docs.
 */
export class SqlitePageReader {
  private readonly db: Database.Database;
  readonly consumers: SqliteConsumerReader;
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
    this.consumers = new SqliteConsumerReader(this.db, maxPageBytes);
    this.inTopics = this.db.prepare<[string, number, number], Row>(
      `SELECT ${COLUMNS} FROM events WHERE topic IN (SELECT value FROM json_each(?)) AND seq > ? ORDER BY seq LIMIT ?`);
    this.last = this.db.prepare<[], number>('SELECT coalesce(max(seq), 0) FROM events').pluck();
    // Served by the (received_at, seq) index: the cost grows with the events received since then, not the store.
    this.firstSince = this.db.prepare<[string], number | null>('SELECT min(seq) FROM events WHERE received_at >= ?').pluck();
  }

  page({ topic, after, limit }: EventPageQuery): Uint8Array {
    // Rows are read lazily: reading stops at the byte cap, whatever `limit` asked for.
    const rows = topic === undefined ? this.all.iterate(after, limit) : this.byTopic.iterate(topic, after, limit);
    return jsonArrayWithin(items(rows), this.maxPageBytes).page;
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
    return jsonArrayWithin(this.topicPage.all(after, limit).map((row) => [Buffer.from(JSON.stringify(row))]), Infinity).page;
  }

  close(): void {
    this.db.close();
  }
}
