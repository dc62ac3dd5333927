import type pg from 'pg';
import { ReadGate } from '../read-gate.js';
import { SEQ_HORIZON } from './postgres-schema.js';
import { createPool, storeError } from './postgres-store.js';
import { withConnection } from './postgres-transaction.js';
import { copyOut, inlined, type BinaryRows } from './copy-out.js';
import { streamPageOf } from './postgres-stream-page.js';
import type { ConsumerPage, ConsumerRecord, ConsumerStatus } from '../consumers.js';
import { CONSUMER_COLUMNS, consumerFromRow, type ConsumerRow } from '../consumer-table.js';
import type { ConsumerPageBounds, EventPageQuery, EventReader, ReadableTopics, StreamPage, StreamPageQuery, TopicPageQuery, PurgeHorizon, TopicDetail } from '../store.js';
import { postgresPatterns } from '../../topic-scope.js';
import { ByteBuilder, type Part } from '../../lib/byte-builder.js';
import { jsonArrayWithin } from '../json-array.js';
import { itemHead } from '../event-doc.js';

const POOL_SIZE = 4;
/** Reads waiting for a pool connection; more get 503 READERS_BUSY at once. */
export const POSTGRES_MAX_QUEUED_READS = 16;
const MAX_WAIT_MS = 2_000;
/** A read's budget, well under the consumer's statement timeout: no client holds a connection for long. */
export const READ_STATEMENT_TIMEOUT_MS = 2_000;

/*
 * Each stored doc is the event's JSON without its seq. A page is read as rows of (seq, doc), which this
 * thread turns into items (`{"seq":` + seq + `,` + the doc after its `{`) and pages with the same builders as
 * SQLite's (jsonArrayWithin, sseFrames), so both stores cut a page at the same byte. Assembling the page as
 * text in SQL cost PostgreSQL several times its plain read (substr of UTF-8 text walks every character,
 * string_agg … ORDER BY sorts the whole page again and spilled to disk past work_mem): /events paging ran at
 * about half the raw read's rate, the stream at a sixth. The SQL still bounds what it sends by the byte cap:
 * a row comes only while the docs up to it, each with `overhead` (the fewest bytes its item or frame adds to
 * a doc, with a one-digit seq), fit; so every row the exact cut keeps comes, and the first always does.
 * Only rows below the commit horizon are returned (see the schema), and no tombstone of a purged event:
 * every read here says `doc IS NOT NULL`, which picks the partial indexes of retained rows, so a read never
 * wades through what was purged.
 */
/**
 * A stream page asks for this many times the rows that fit its byte cap at the average frame size: pages
 * of larger events than the average come full all the same, and a run of smaller ones soon lowers it.
 */
const ROWS_MARGIN = 1.25;
/** `{"seq":1,` for the doc's `{`, and the `,` or `]` after the item. */
const ITEM_OVERHEAD = 9;
/** `id: 1\nevent: event\ndata: {"seq":1,` for the doc's `{`, and the blank line after it. */
const FRAME_OVERHEAD = 35;
/** The commit horizon, once per statement. */
const HORIZON = `horizon AS MATERIALIZED (SELECT ${SEQ_HORIZON} AS first_unreadable)`;
/**
 * Rows of `columns` (with seq and doc) after `where`, in seq order, below the horizon. The horizon cuts the
 * rows after the limit: rows at or above it all come after those below, so what is left is still the first
 * rows below it. (As a condition of the index scan, its bounds unknown to the planner, a table without
 * statistics yet, just filled, got a bitmap scan of every row after the cursor and a sort at every page.)
 */
const rowsWithin = (columns: string, where: string, overhead: number) => `
  SELECT ${columns} FROM (
    SELECT ${columns}, row_number() OVER w AS n, sum(octet_length(doc) + ${overhead}) OVER w AS least_bytes
    FROM (SELECT ${columns} FROM events WHERE ${where} AND doc IS NOT NULL ORDER BY seq LIMIT $2) limited
    WHERE seq < (SELECT first_unreadable FROM horizon)
    WINDOW w AS (ORDER BY seq ROWS UNBOUNDED PRECEDING)
  ) sized
  WHERE n = 1 OR least_bytes <= $4
  ORDER BY seq`;
const pageOf = (topicFilter: string, before: string) =>
  `WITH ${HORIZON} ${rowsWithin('seq, doc', `seq > $1 AND (${before}::bigint IS NULL OR seq < ${before}) AND ${topicFilter}`, ITEM_OVERHEAD)}`;
/** $5: an access token's readable topics as regular expressions (NULL: every topic); $6: a time range's end (NULL: none). */
const PAGE = pageOf('($3::text IS NULL OR topic = $3) AND ($5::text[] IS NULL OR topic ~ ANY($5::text[]))', '$6');
/** A durable consumer's page: its topics (NULL: every topic); $5: a time range's end (NULL: none). */
const CONSUMER_PAGE = pageOf('($3::text[] IS NULL OR topic = ANY($3::text[]))', '$5');

/**
 * Where a time range ends: the first event received after $1, through the (received_at, seq) index alone
 * (the cost grows with the events received since then). A purged event's row counts too: it was received
 * then, and reading only the index spares a heap visit per row. Below the commit horizon only: a row above
 * it could still be joined by a lower seq committing later, and the answer must never move down.
 */
const FIRST_AFTER = `
  SELECT min(seq) AS seq FROM events WHERE received_at > $1 AND seq < ${SEQ_HORIZON}`;

/**
 * Consumers with their lag, counted below the commit horizon like every read, and the received_at of the
 * first unconsumed event, taken from the end of its doc (where event-doc.ts puts it) without parsing it.
 */
const CONSUMER_STATUS = `
  WITH horizon AS (SELECT ${SEQ_HORIZON} AS seq)
  SELECT ${CONSUMER_COLUMNS.split(', ').map((column) => `c.${column}`).join(', ')}, lag.count AS lag,
         substring(first.doc from '"received_at":"([^"]*)"}$') AS oldest_unconsumed_at
  FROM consumers c CROSS JOIN horizon h
  CROSS JOIN LATERAL (
    SELECT count(*) FROM events e
    WHERE e.seq > c.position AND e.seq < h.seq AND e.doc IS NOT NULL AND (c.topics IS NULL OR e.topic = ANY(c.topics))
  ) lag
  LEFT JOIN LATERAL (
    SELECT e.doc FROM events e
    WHERE e.seq > c.position AND e.seq < h.seq AND e.doc IS NOT NULL AND (c.topics IS NULL OR e.topic = ANY(c.topics))
    ORDER BY e.seq LIMIT 1
  ) first ON true
  WHERE $1::text IS NULL OR c.name = $1
  ORDER BY c.name`;

/**
 * The purge horizon of the topics `topics` (a text[] parameter; NULL: every topic, or every one matching the
 * readable expressions `readable`), as columns max and min. min is 0 as soon as one of them has purged
 * nothing; over every topic that is the first topic without a purge row, so the probe usually stops early.
 */
const purgeHorizonOf = (topics: string, readable: string) => `
  (SELECT coalesce(max(purged_through), 0) FROM topic_purges
   WHERE (${topics}::text[] IS NULL OR topic = ANY(${topics}::text[])) AND (${readable}::text[] IS NULL OR topic ~ ANY(${readable}::text[]))) AS max,
  CASE WHEN ${topics}::text[] IS NULL
       THEN CASE WHEN EXISTS (SELECT 1 FROM topic_counts c WHERE (${readable}::text[] IS NULL OR c.topic ~ ANY(${readable}::text[]))
                              AND NOT EXISTS (SELECT 1 FROM topic_purges p WHERE p.topic = c.topic))
                 THEN 0 ELSE (SELECT coalesce(min(purged_through), 0) FROM topic_purges
                              WHERE ${readable}::text[] IS NULL OR topic ~ ANY(${readable}::text[])) END
       ELSE (SELECT CASE WHEN bool_and(p.topic IS NOT NULL) THEN min(p.purged_through) ELSE 0 END
             FROM unnest(${topics}::text[]) t(topic) LEFT JOIN topic_purges p USING (topic))
  END AS min`;
const PURGE_HORIZON = `SELECT ${purgeHorizonOf('$1', '$2')}`;

/*
 * A stream page's rows (framed here, see rowsWithin), each with where an empty page leaves the cursor
 * (`horizon - 1`) and `pending`: rows committed at or above the horizon, readable once the transactions below
 * them end. The horizon is one row joined to the page, so an empty page is still one row (seq NULL) that
 * carries both. `pending` compares the highest seq (one step down the seq index, whatever the statistics
 * say) with the horizon; an EXISTS over `seq >= horizon` was planned as a scan of the whole table at every
 * page and every commit wake-up. With `purges`, each row also carries the purge horizon of the page's
 * topics (PURGE_HORIZON), read in the page's own snapshot: a catch-up page needs no check of its own after
 * it (a purge is one transaction, so the snapshot holds a purge's tombstones and its horizon, or neither).
 * Read as binary COPY (copy-out.ts): every parameter is cast where it is used.
 */
const streamOf = (purges: boolean) => {
  const rows = rowsWithin('seq, topic, doc',
    'seq > $1::bigint AND ($3::text[] IS NULL OR topic = ANY($3::text[])) AND ($5::text[] IS NULL OR topic ~ ANY($5::text[]))', FRAME_OVERHEAD);
  const ends = `(SELECT visible_end FROM ends), (SELECT pending FROM ends)`;
  const horizons = purges ? ', (SELECT max FROM ends), (SELECT min FROM ends)' : '';
  return `
  WITH ${HORIZON}${purges ? `, purges AS MATERIALIZED (SELECT ${purgeHorizonOf('$3', '$5')})` : ''},
  ends AS MATERIALIZED (
    SELECT h.first_unreadable - 1 AS visible_end, coalesce((SELECT max(seq) FROM events), 0) >= h.first_unreadable AS pending
           ${purges ? ', p.max::bigint, p.min::bigint' : ''}
    FROM horizon h${purges ? ' CROSS JOIN purges p' : ''})
  SELECT ${ends}, seq, topic, doc${horizons} FROM (${rows}) r
  UNION ALL
  SELECT ${ends}, NULL, NULL, NULL${horizons} WHERE NOT EXISTS (${rows})
  ORDER BY seq`;
};
export const STREAM = streamOf(false);
export const STREAM_WITH_PURGES = streamOf(true);

/**
 * A stream's start: before the first visible event received at or after $1 (through the (received_at, seq)
 * index: the cost grows with the events received since then), else the horizon, so that every row not yet
 * readable is still ahead of the cursor.
 */
const START = `
  WITH horizon AS (SELECT ${SEQ_HORIZON} AS first_unreadable)
  SELECT coalesce((SELECT min(seq) FROM events, horizon WHERE $1::text IS NOT NULL AND received_at >= $1
                   AND seq < horizon.first_unreadable AND doc IS NOT NULL), horizon.first_unreadable) - 1 AS after
  FROM horizon`;

/** Store-wide counts are the sum of every replica's rows. */
const TOPICS = `
  SELECT topic, sum(events) AS events FROM topic_counts WHERE topic > $1 AND ($3::text[] IS NULL OR topic ~ ANY($3::text[]))
  GROUP BY topic ORDER BY topic LIMIT $2`;

const PURGE_HORIZONS_ABOVE = `
  SELECT coalesce(array_agg(purged_through ORDER BY purged_through), '{}') AS horizons
  FROM topic_purges
  WHERE purged_through > $1 AND ($2::text[] IS NULL OR topic = ANY($2)) AND ($3::text[] IS NULL OR topic ~ ANY($3::text[]))`;

/**
 * /stats figures of the topics $1 that exist: retained events and their doc bytes (summed over replicas),
 * the first and last retained seq and the first one's received_at (ends of the partial (topic, seq) index),
 * and how far the topic was purged.
 */
const TOPIC_DETAILS = `
  SELECT c.topic, c.events, c.bytes, coalesce(f.seq, 0) AS first_seq, f.received_at AS oldest_received_at,
         coalesce(l.seq, 0) AS last_seq, coalesce(p.purged_through, 0) AS purged_through
  FROM (SELECT topic, sum(events) AS events, sum(bytes) AS bytes FROM topic_counts WHERE topic = ANY($1) GROUP BY topic) c
  LEFT JOIN LATERAL (SELECT seq, received_at FROM events WHERE topic = c.topic AND doc IS NOT NULL ORDER BY seq LIMIT 1) f ON true
  LEFT JOIN LATERAL (SELECT seq FROM events WHERE topic = c.topic AND doc IS NOT NULL ORDER BY seq DESC LIMIT 1) l ON true
  LEFT JOIN topic_purges p ON p.topic = c.topic
  ORDER BY c.topic`;

/** The aggregator's tables with their indexes and TOAST: not the WAL, nor anything else in the database. */
const DISK_BYTES = `
  SELECT coalesce(sum(pg_total_relation_size(to_regclass(name))), 0) AS bytes
  FROM unnest(array['events', 'replica_counters', 'topic_counts', 'ring_checkpoints', 'consumers', 'topic_purges', 'purges']) name`;

/**
 * Reads go down an index in seq order and stop at a page. With the default random_page_cost (4, a disk's
 * seek), the planner read a topic's page (10,000 rows) by a bitmap scan and a sort that spilled past
 * work_mem, rather than down the (topic, seq) index in order: twice as slow on a store in memory. A lower
 * value the server already has is kept.
 */
const READER_SESSION = `SELECT set_config('random_page_cost', least(current_setting('random_page_cost')::float8, 1.1)::text, false)`;

/**
 * /events and /topics on PostgreSQL: store-wide, every replica's events, in commit-horizon (seq) order.
 * The gate bounds the reads in flight (the pool) and waiting; each read has its own statement budget.
 */
export class PostgresEventReader implements EventReader {
  private readonly pool: pg.Pool;
  private readonly gate = new ReadGate({ slots: POOL_SIZE, maxQueued: POSTGRES_MAX_QUEUED_READS, maxWaitMs: MAX_WAIT_MS });
  /**
   * Buffers that stream pages are copied out into, kept for the next: as many as connections, each about a
   * page (a new one for each page made garbage at a rate that had V8 collect twice as often).
   */
  private readonly staging: ByteBuilder[] = [];
  /** A stream frame's bytes, averaged over the last pages read (halved in weight at each). */
  private frameBytes = FRAME_OVERHEAD;

  /** `statementTimeoutMs`: the writer's (PG_STATEMENT_TIMEOUT_MS); a read's own budget is never longer. */
  constructor(url: string, replica: string, private readonly maxPageBytes: number, statementTimeoutMs = READ_STATEMENT_TIMEOUT_MS) {
    this.pool = createPool(url, `pubsub-aggregator reader ${replica}`, POOL_SIZE, Math.min(READ_STATEMENT_TIMEOUT_MS, statementTimeoutMs),
      (client) => client.query(READER_SESSION));
  }

  async page({ topic, after, limit, readable, before }: EventPageQuery): Promise<Uint8Array> {
    const rows = await this.rows<PageRow>(PAGE, [after, limit, topic ?? null, this.maxPageBytes, expressions(readable), before ?? null]);
    return jsonArrayWithin(items(rows), this.maxPageBytes, pageBytes(rows)).page;
  }

  async streamPage({ topics, after, limit, maxBytes, readable, purgeHorizon }: StreamPageQuery): Promise<StreamPage> {
    // Rows past the byte cap are read and then dropped (see rowsWithin): ask for about as many as fit.
    const rowsWanted = Math.min(limit, Math.ceil(ROWS_MARGIN * maxBytes / this.frameBytes));
    const statement = inlined(purgeHorizon ? STREAM_WITH_PURGES : STREAM, [after, rowsWanted, topics ?? null, maxBytes, expressions(readable)]);
    // A row of the COPY output is a little longer than its frame (field lengths, topic): room for a full page.
    const staging = this.staging.pop() ?? new ByteBuilder(Math.ceil(1.25 * maxBytes));
    const done = () => {
      if (this.staging.length < POOL_SIZE) this.staging.push(staging);
    };
    let rows: BinaryRows;
    try {
      rows = await this.guarded(() => withConnection(this.pool, (client) => copyOut(client, statement, staging)));
      if (!rows.next()) throw new Error('a stream page without its horizon row');
    } catch (error) {
      done();
      throw error;
    }
    const { page, frameBytes } = streamPageOf(rows, maxBytes, done);
    if (frameBytes !== undefined) this.frameBytes = (this.frameBytes + frameBytes) / 2;
    return page;
  }

  async startAfter(since: string | undefined): Promise<number> {
    const { rows: [row] } = await this.query<{ after: string }>(START, [since ?? null]);
    return Number(row!.after);
  }

  async firstReceivedAfter(until: string): Promise<number | undefined> {
    const { rows: [row] } = await this.query<{ seq: string | null }>(FIRST_AFTER, [until]);
    return row!.seq === null ? undefined : Number(row!.seq);
  }

  async topics({ after, limit, readable }: TopicPageQuery): Promise<Uint8Array> {
    const { rows } = await this.query<{ topic: string; events: string }>(TOPICS, [after, limit, expressions(readable)]);
    return Buffer.from(JSON.stringify(rows.map((r) => ({ topic: r.topic, events: Number(r.events) }))));
  }

  async consumer(name: string): Promise<ConsumerRecord | undefined> {
    const { rows: [row] } = await this.query<ConsumerRow>(`SELECT ${CONSUMER_COLUMNS} FROM consumers WHERE name = $1`, [name]);
    return row && consumerFromRow(row);
  }

  async consumerStatus(name?: string): Promise<ConsumerStatus[]> {
    const { rows } = await this.query<ConsumerRow & { lag: string; oldest_unconsumed_at: string | null }>(
      CONSUMER_STATUS, [name ?? null]);
    return rows.map((row) => ({ ...consumerFromRow(row), lag: Number(row.lag), oldestUnconsumedAt: row.oldest_unconsumed_at }));
  }

  async consumerPage(name: string, limit: number, { after = 0, before }: ConsumerPageBounds = {}): Promise<ConsumerPage | undefined> {
    const consumer = await this.consumer(name);
    if (!consumer) return undefined;
    const rows = await this.rows<PageRow>(
      CONSUMER_PAGE, [Math.max(consumer.position, after), limit, consumer.topics, this.maxPageBytes, before ?? null]);
    const { page, count } = jsonArrayWithin(items(rows), this.maxPageBytes, pageBytes(rows));
    return { events: page, count, next: count > 0 ? Number(rows[count - 1]![0]) : consumer.position, topics: consumer.topics };
  }

  async purgeHorizon(topics: readonly string[] | undefined, readable?: ReadableTopics): Promise<PurgeHorizon> {
    const { rows: [row] } = await this.query<{ max: string; min: string }>(PURGE_HORIZON, [topics ?? null, expressions(readable)]);
    return { max: Number(row!.max), min: Number(row!.min) };
  }

  async purgeHorizonsAbove(topics: readonly string[] | undefined, after: number, readable?: ReadableTopics): Promise<number[]> {
    const { rows: [row] } = await this.query<{ horizons: string[] }>(PURGE_HORIZONS_ABOVE, [after, topics ?? null, expressions(readable)]);
    return row!.horizons.map(Number);
  }

  async topicDetails(topics: readonly string[]): Promise<TopicDetail[]> {
    const { rows } = await this.query<Record<keyof TopicDetail, string>>(TOPIC_DETAILS, [topics]);
    return rows.map((r) => ({
      topic: r.topic, events: Number(r.events), bytes: Number(r.bytes), first_seq: Number(r.first_seq), last_seq: Number(r.last_seq),
      oldest_received_at: r.oldest_received_at, purged_through: Number(r.purged_through),
    }));
  }

  async diskBytes(): Promise<number> {
    const { rows: [row] } = await this.query<{ bytes: string }>(DISK_BYTES, []);
    return Number(row!.bytes);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  private query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    return this.guarded(() => this.pool.query<R>(text, values));
  }

  /** A page's rows as arrays: no object per row. */
  private async rows<R extends unknown[]>(text: string, values: unknown[]): Promise<R[]> {
    return (await this.guarded(() => this.pool.query<R>({ text, values, rowMode: 'array' }))).rows;
  }

  /** Driver errors name the server's host and port: they become a StoreError, the driver's own kept as its cause. */
  private guarded<T>(read: () => Promise<T>): Promise<T> {
    return this.gate.run(async () => {
      try {
        return await read();
      } catch (error) {
        throw storeError(error);
      }
    });
  }
}

/** Readable topic patterns as the queries' regular-expression parameter; null: every topic. */
const expressions = (readable: ReadableTopics): string[] | null => (readable === undefined ? null : postgresPatterns(readable));

/** seq, doc */
type PageRow = [string, string];

/** A page's bytes if every doc is ASCII (else more): `[`, each item (itemHead, then the doc after its `{`) and the `,` or `]` after it. */
function pageBytes(rows: readonly PageRow[]): number {
  let bytes = 1;
  for (const [seq, doc] of rows) bytes += seq.length + doc.length + 8;
  return bytes;
}

function* items(rows: readonly PageRow[]): Generator<Part[]> {
  for (const [seq, doc] of rows) yield [itemHead(seq) + doc.slice(1)];
}
