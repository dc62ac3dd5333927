import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteConsumerReader } from './sqlite-consumer-reader.js';
import { below, COLUMNS, items, streamItems, type Row } from './sqlite-page.js';
import { jsonArrayWithin } from '../json-array.js';
import { sseFrames } from '../sse-frames.js';
import type { EventPageQuery, PurgeHorizon, ReadableTopics, StreamPage, StreamPageQuery, TopicDetail, TopicPageQuery } from '../store.js';
import { cachedMatcher } from '../../topic-scope.js';

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
  private readonly allReadable;
  private readonly byTopic;
  private readonly topicPage;
  private readonly readableTopicPage;
  private readonly inTopics;
  private readonly last;
  private readonly firstSince;
  private readonly firstAfter;
  private readonly horizonOfAll;
  private readonly horizonOf;
  private readonly horizonOfReadable;
  private readonly horizonsAboveOfAll;
  private readonly horizonsAboveOf;
  private readonly horizonsAboveOfReadable;
  private readonly details;

  constructor(private readonly path: string, private readonly maxPageBytes: number) {
    this.db = new Database(path, { readonly: true, fileMustExist: true });
    // An access token's readable topics (patterns, as JSON text), matched by the same matcher as everywhere.
    const matches = cachedMatcher();
    this.db.function('readable', { deterministic: true }, (patterns, topic) => Number(matches(String(patterns), String(topic))));
    this.all = this.db.prepare<[number, number], Row>(`SELECT ${COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?`);
    // In seq order, skipping the events of other topics: a page costs the rows up to its last readable event.
    this.allReadable = this.db.prepare<[number, string, number], Row>(
      `SELECT ${COLUMNS} FROM events WHERE seq > ? AND readable(?, topic) ORDER BY seq LIMIT ?`);
    this.byTopic = this.db.prepare<[string, number, number], Row>(
      `SELECT ${COLUMNS} FROM events WHERE topic = ? AND seq > ? ORDER BY seq LIMIT ?`);
    this.topicPage = this.db.prepare<[string, number], { topic: string; events: number }>(
      'SELECT topic, events FROM topics WHERE topic > ? ORDER BY topic LIMIT ?');
    this.readableTopicPage = this.db.prepare<[string, string, number], { topic: string; events: number }>(
      'SELECT topic, events FROM topics WHERE topic > ? AND readable(?, topic) ORDER BY topic LIMIT ?');
    this.consumers = new SqliteConsumerReader(this.db, maxPageBytes);
    this.inTopics = this.db.prepare<[string, number, number], Row>(
      `SELECT ${COLUMNS} FROM events WHERE topic IN (SELECT value FROM json_each(?)) AND seq > ? ORDER BY seq LIMIT ?`);
    // The store's end: a purge may have deleted the newest events too, and their keys keep their seqs.
    this.last = this.db.prepare<[], number>(
      'SELECT max(coalesce((SELECT max(seq) FROM events), 0), coalesce((SELECT max(seq) FROM purged_keys), 0))').pluck();
    // Served by the (received_at, seq) index: the cost grows with the events received since then, not the store.
    this.firstSince = this.db.prepare<[string], number | null>('SELECT min(seq) FROM events WHERE received_at >= ?').pluck();
    this.firstAfter = this.db.prepare<[string], number | null>('SELECT min(seq) FROM events WHERE received_at > ?').pluck();
    // Two subqueries rather than max() and min() side by side, so that topics_by_purged serves each.
    this.horizonOfAll = this.db.prepare<[], PurgeHorizon>(
      `SELECT coalesce((SELECT max(purged_through) FROM topics), 0) AS max,
              coalesce((SELECT min(purged_through) FROM topics), 0) AS min`);
    this.horizonOf = this.db.prepare<[string], PurgeHorizon>(
      `SELECT coalesce(max(purged_through), 0) AS max, coalesce(min(purged_through), 0) AS min
       FROM topics WHERE topic IN (SELECT value FROM json_each(?))`);
    this.horizonOfReadable = this.db.prepare<[string], PurgeHorizon>(
      `SELECT coalesce(max(purged_through), 0) AS max, coalesce(min(purged_through), 0) AS min FROM topics WHERE readable(?, topic)`);
    this.horizonsAboveOfAll = this.db.prepare<[number], number>(
      'SELECT purged_through FROM topics WHERE purged_through > ? ORDER BY purged_through').pluck();
    this.horizonsAboveOf = this.db.prepare<[number, string], number>(
      `SELECT purged_through FROM topics WHERE purged_through > ? AND topic IN (SELECT value FROM json_each(?))
       ORDER BY purged_through`).pluck();
    this.horizonsAboveOfReadable = this.db.prepare<[number, string], number>(
      'SELECT purged_through FROM topics WHERE purged_through > ? AND readable(?, topic) ORDER BY purged_through').pluck();
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

  page({ topic, after, limit, readable, before }: EventPageQuery): Uint8Array {
    // Rows are read lazily: reading stops at the byte cap or at `before`, whatever `limit` asked for.
    const rows = topic === undefined ? this.everyTopic(after, limit, readable) : this.byTopic.iterate(topic, after, limit);
    return jsonArrayWithin(items(below(rows, before)), this.maxPageBytes).page;
  }

  /** Events of every topic, or of every readable one. */
  private everyTopic(after: number, limit: number, readable: ReadableTopics): Iterable<Row> {
    return readable === undefined ? this.all.iterate(after, limit) : this.allReadable.iterate(after, JSON.stringify(readable), limit);
  }

  streamPage({ topics, after, limit, maxBytes, readable }: StreamPageQuery): StreamPage {
    // Read before the page: an empty page then means nothing matching up to here, so the cursor may move on.
    const end = this.last.get()!;
    const rows = topics === undefined ? this.everyTopic(after, limit, readable)
      : topics.length === 1 ? this.byTopic.iterate(topics[0]!, after, limit)
        : this.inTopics.iterate(JSON.stringify(topics), after, limit);
    return sseFrames(streamItems(rows), maxBytes, end);
  }

  startAfter(since: string | undefined): number {
    const first = since === undefined ? null : (this.firstSince.get(since) ?? null);
    return first === null ? this.last.get()! : first - 1;
  }

  /** Through the (received_at, seq) index, as startAfter: the cost grows with the events received after `until`. */
  firstReceivedAfter(until: string): number | undefined {
    return this.firstAfter.get(until) ?? undefined;
  }

  /** From `topics.purged_through`, which a purge advances in the transaction that deletes the events. */
  purgeHorizon(topics: readonly string[] | undefined, readable: ReadableTopics): PurgeHorizon {
    if (topics !== undefined) return this.horizonOf.get(JSON.stringify(topics))!;
    return readable === undefined ? this.horizonOfAll.get()! : this.horizonOfReadable.get(JSON.stringify(readable))!;
  }

  purgeHorizonsAbove(topics: readonly string[] | undefined, after: number, readable: ReadableTopics): number[] {
    if (topics !== undefined) return this.horizonsAboveOf.all(after, JSON.stringify(topics));
    return readable === undefined ? this.horizonsAboveOfAll.all(after) : this.horizonsAboveOfReadable.all(after, JSON.stringify(readable));
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

  topics({ after, limit, readable }: TopicPageQuery): Uint8Array {
    const rows = readable === undefined ? this.topicPage.all(after, limit) : this.readableTopicPage.all(after, JSON.stringify(readable), limit);
    return jsonArrayWithin(rows.map((row) => [JSON.stringify(row)]), Infinity).page;
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
