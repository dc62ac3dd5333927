import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteConsumerReader } from './sqlite-consumer-reader.js';
import { COLUMNS, items, jsonArrayWithin, streamItems, type Row } from './sqlite-page.js';
import { sseFrames } from '../sse-frames.js';
import type { EventPageQuery, PurgeHorizon, StreamPage, StreamPageQuery, TopicDetail, TopicPageQuery } from '../store.js';

/**
 * /events, /topics, stream pages, purge horizons and /stats figures on SQLite, run by the reader worker
 * (workers/reader.ts) on a read-only connection of its own: in WAL mode it reads committed data while the
 * consumer writes. Pages are built here, each stored payload embedded as the exact text it was stored as
 * (never re-parsed), in the same item shape as PostgreSQL's stored docs.
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
  private readonly horizonOfAll;
  private readonly horizonOf;
  private readonly details;

  constructor(private readonly path: string, private readonly maxPageBytes: number) {
    this.db = new Database(path, { readonly: true, fileMustExist: true });
    this.all = this.db.prepare<[number, number], Row>(`SELECT ${COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?`);
    this.byTopic = this.db.prepare<[string, number, number], Row>(
      `SELECT ${COLUMNS} FROM events WHERE topic = ? AND seq > ? ORDER BY seq LIMIT ?`);
    this.topicPage = this.db.prepare<[string, number], { topic: string; events: number }>(
      'SELECT topic, events FROM topics WHERE topic > ? ORDER BY topic LIMIT ?');
    this.consumers = new SqliteConsumerReader(this.db, maxPageBytes);
    this.inTopics = this.db.prepare<[string, number, number], Row>(
      `SELECT ${COLUMNS} FROM events WHERE topic IN (SELECT value FROM json_each(?)) AND seq > ? ORDER BY seq LIMIT ?`);
    // The store's end: a purge may have deleted the newest events too, and their keys keep their seqs.
    this.last = this.db.prepare<[], number>(
      'SELECT max(coalesce((SELECT max(seq) FROM events), 0), coalesce((SELECT max(seq) FROM purged_keys), 0))').pluck();
    // Served by the (received_at, seq) index: the cost grows with the events received since then, not the store.
    this.firstSince = this.db.prepare<[string], number | null>('SELECT min(seq) FROM events WHERE received_at >= ?').pluck();
    // Two subqueries rather than max() and min() side by side, so that topics_by_purged serves each.
    this.horizonOfAll = this.db.prepare<[], PurgeHorizon>(
      `SELECT coalesce((SELECT max(purged_through) FROM topics), 0) AS max,
              coalesce((SELECT min(purged_through) FROM topics), 0) AS min`);
    this.horizonOf = this.db.prepare<[string], PurgeHorizon>(
      `SELECT coalesce(max(purged_through), 0) AS max, coalesce(min(purged_through), 0) AS min
       FROM topics WHERE topic IN (SELECT value FROM json_each(?))`);
    // The retained range from the events themselves: two seeks of events_by_topic per topic.
    this.details = this.db.prepare<[string], TopicDetail>(
      `SELECT topic, events, bytes, coalesce(first_seq, 0) AS first_seq, coalesce(last_seq, 0) AS last_seq, purged_through,
              (SELECT received_at FROM events WHERE seq = first_seq) AS oldest_received_at
       FROM (SELECT topic, events, bytes, purged_through,
                    (SELECT min(seq) FROM events WHERE events.topic = topics.topic) AS first_seq,
                    (SELECT max(seq) FROM events WHERE events.topic = topics.topic) AS last_seq
             FROM topics WHERE topic IN (SELECT value FROM json_each(?)))
       ORDER BY topic`);
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

  /** From `topics.purged_through`, which a purge advances in the transaction that deletes the events. */
  purgeHorizon(topics: readonly string[] | undefined): PurgeHorizon {
    return topics === undefined ? this.horizonOfAll.get()! : this.horizonOf.get(JSON.stringify(topics))!;
  }

  topicDetails(topics: readonly string[]): TopicDetail[] {
    return this.details.all(JSON.stringify(topics));
  }

  /** The database, its WAL and the sealed dedup key files (`<db>.keys/`, absent until the first is sealed). */
  diskBytes(): number {
    const keys = `${this.path}.keys`;
    return [this.path, `${this.path}-wal`, ...filesIn(keys).map((name) => join(keys, name))]
      .reduce((sum, path) => sum + (statSync(path, { throwIfNoEntry: false })?.size ?? 0), 0);
  }

  topics({ after, limit }: TopicPageQuery): Uint8Array {
    return jsonArrayWithin(this.topicPage.all(after, limit).map((row) => [Buffer.from(JSON.stringify(row))]), Infinity).page;
  }

  close(): void {
    this.db.close();
  }
}

/** The names of the files in `dir`; none when it does not exist. */
function filesIn(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((entry) => entry.isFile()).map((entry) => entry.name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}
