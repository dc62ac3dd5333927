import type pg from 'pg';
import { ReadGate } from '../read-gate.js';
import { SEQ_HORIZON } from './postgres-schema.js';
import { createPool, storeError } from './postgres-store.js';
import type { ConsumerPage, ConsumerRecord, ConsumerStatus } from '../consumers.js';
import { CONSUMER_COLUMNS, consumerFromRow, type ConsumerRow } from '../consumer-table.js';
import type { ConsumerPageBounds, EventPageQuery, EventReader, ReadableTopics, StreamPage, StreamPageQuery, TopicPageQuery, PurgeHorizon, TopicDetail } from '../store.js';
import { postgresPatterns } from '../../topic-scope.js';

const POOL_SIZE = 4;
/** Reads waiting for a pool connection; more get 503 READERS_BUSY at once. */
export const POSTGRES_MAX_QUEUED_READS = 16;
const MAX_WAIT_MS = 2_000;
/** A read's budget, well under the consumer's statement timeout: no client holds a connection for long. */
export const READ_STATEMENT_TIMEOUT_MS = 2_000;

/*
 * Each stored doc is the event's JSON without its seq, so a page is assembled as text by PostgreSQL and
 * sent to the socket as is. The byte cap is a running total of each item's exact size (its doc, its seq,
 * `{"seq":` and `,`, and the separator after it), so the page holds the same events the SQLite builder
 * would. Sizes come from octet_length, which reads the stored length without fetching a large doc; only
 * the docs kept are read. Only rows below the commit horizon are returned (see the schema), and no
 * tombstone of a purged event: every read here says `doc IS NOT NULL`, which picks the partial indexes
 * of retained rows, so a read never wades through what was purged.
 */
const pageOf = (topicFilter: string, before: string) => `
  SELECT coalesce('[' || string_agg('{"seq":' || seq || ',' || substr(doc, 2), ',' ORDER BY seq) || ']', '[]') AS page,
         count(*) AS count, max(seq) AS last
  FROM (
    SELECT seq, doc, row_number() OVER w AS n, sum(octet_length(doc) + length(seq::text) + 8) OVER w AS bytes
    FROM (
      SELECT seq, doc FROM events
      WHERE seq > $1 AND seq < ${SEQ_HORIZON} AND (${before}::bigint IS NULL OR seq < ${before}) AND doc IS NOT NULL AND ${topicFilter}
      ORDER BY seq LIMIT $2
    ) limited
    WINDOW w AS (ORDER BY seq)
  ) sized
  WHERE n = 1 OR 1 + bytes <= $4`;
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

/*
 * A stream page, framed by PostgreSQL (see StreamPage), with the same byte-cap rule. Line breaks in a doc
 * (JSON whitespace in a payload) start a new `data:` line. `pending`: rows committed at or above the horizon,
 * readable once the transactions below them end; `horizon - 1` is where an empty page leaves the cursor.
 * Only the rows that can fit are framed: a frame is at least as long as its doc (the framing only adds
 * bytes), so rows past the cap by their docs' stored lengths alone are past it framed too, and the exact
 * cut over the rest keeps the same page. (Framing every row up to the limit made a page of large events
 * cost several times its size.) `pending` compares the highest seq (one step down the seq index, whatever
 * the statistics say) with the horizon; an EXISTS over `seq >= horizon` was planned as a scan of the whole
 * table at every page and every commit wake-up.
 */
export const STREAM = `
  WITH horizon AS (SELECT ${SEQ_HORIZON} AS first_unreadable),
  limited AS (
    SELECT seq, topic, doc, row_number() OVER w AS n, sum(octet_length(doc)) OVER w AS doc_bytes
    FROM (
      SELECT seq, topic, doc FROM events, horizon
      WHERE seq > $1 AND seq < horizon.first_unreadable AND doc IS NOT NULL AND ($3::text[] IS NULL OR topic = ANY($3))
        AND ($5::text[] IS NULL OR topic ~ ANY($5::text[]))
      ORDER BY seq LIMIT $2
    ) rows
    WINDOW w AS (ORDER BY seq)
  ), framed AS (
    SELECT seq, topic, 'id: ' || seq || E'\nevent: event\ndata: {"seq":' || seq || ','
             || replace(replace(replace(substr(doc, 2), E'\r\n', E'\n'), E'\r', E'\n'), E'\n', E'\ndata: ') || E'\n\n' AS frame
    FROM limited WHERE n = 1 OR doc_bytes <= $4
  ), sized AS (
    SELECT seq, topic, frame, row_number() OVER w AS n, sum(octet_length(frame)) OVER w AS bytes
    FROM framed WINDOW w AS (ORDER BY seq)
  ), kept AS (SELECT * FROM sized WHERE n = 1 OR bytes <= $4)
  SELECT coalesce(string_agg(frame, '' ORDER BY seq), '') AS frames, coalesce(array_agg(seq ORDER BY seq), '{}') AS seqs,
         coalesce(array_agg(topic ORDER BY seq), '{}') AS topics, coalesce(array_agg(bytes ORDER BY seq), '{}') AS ends,
         (SELECT first_unreadable FROM horizon) - 1 AS visible_end,
         coalesce((SELECT max(seq) FROM events), 0) >= (SELECT first_unreadable FROM horizon) AS pending
  FROM kept`;

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

/**
 * The purge horizon of the topics $1 (NULL: every topic, or every one matching the readable expressions
 * $2). min is 0 as soon as one of them has purged nothing; over every topic that is the first topic without
 * a purge row, so the probe usually stops early.
 */
const PURGE_HORIZON = `
  SELECT (SELECT coalesce(max(purged_through), 0) FROM topic_purges
          WHERE ($1::text[] IS NULL OR topic = ANY($1)) AND ($2::text[] IS NULL OR topic ~ ANY($2::text[]))) AS max,
         CASE WHEN $1::text[] IS NULL
              THEN CASE WHEN EXISTS (SELECT 1 FROM topic_counts c WHERE ($2::text[] IS NULL OR c.topic ~ ANY($2::text[]))
                                     AND NOT EXISTS (SELECT 1 FROM topic_purges p WHERE p.topic = c.topic))
                        THEN 0 ELSE (SELECT coalesce(min(purged_through), 0) FROM topic_purges
                                     WHERE $2::text[] IS NULL OR topic ~ ANY($2::text[])) END
              ELSE (SELECT CASE WHEN bool_and(p.topic IS NOT NULL) THEN min(p.purged_through) ELSE 0 END
                    FROM unnest($1::text[]) t(topic) LEFT JOIN topic_purges p USING (topic))
         END AS min`;

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
 * /events and /topics on PostgreSQL: store-wide, every replica's events, in commit-horizon (seq) order.
 * The gate bounds the reads in flight (the pool) and waiting; each read has its own statement budget.
 */
export class PostgresEventReader implements EventReader {
  private readonly pool: pg.Pool;
  private readonly gate = new ReadGate({ slots: POOL_SIZE, maxQueued: POSTGRES_MAX_QUEUED_READS, maxWaitMs: MAX_WAIT_MS });

  /** `statementTimeoutMs`: the writer's (PG_STATEMENT_TIMEOUT_MS); a read's own budget is never longer. */
  constructor(url: string, replica: string, private readonly maxPageBytes: number, statementTimeoutMs = READ_STATEMENT_TIMEOUT_MS) {
    this.pool = createPool(url, `pubsub-aggregator reader ${replica}`, POOL_SIZE, Math.min(READ_STATEMENT_TIMEOUT_MS, statementTimeoutMs));
  }

  async page({ topic, after, limit, readable, before }: EventPageQuery): Promise<Uint8Array> {
    const { rows } = await this.query<{ page: string }>(
      PAGE, [after, limit, topic ?? null, this.maxPageBytes, expressions(readable), before ?? null]);
    return Buffer.from(rows[0]!.page);
  }

  async streamPage({ topics, after, limit, maxBytes, readable }: StreamPageQuery): Promise<StreamPage> {
    const { rows: [row] } = await this.query<StreamRow>(STREAM, [after, limit, topics ?? null, maxBytes, expressions(readable)]);
    const seqs = Float64Array.from(row!.seqs, Number);
    return {
      frames: Buffer.from(row!.frames),
      seqs,
      ends: Uint32Array.from(row!.ends, Number),
      topics: row!.topics,
      end: seqs.length > 0 ? seqs[seqs.length - 1]! : Number(row!.visible_end),
      pending: row!.pending,
    };
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
    const { rows: [row] } = await this.query<{ page: string; count: string; last: string | null }>(
      CONSUMER_PAGE, [Math.max(consumer.position, after), limit, consumer.topics, this.maxPageBytes, before ?? null]);
    return {
      events: Buffer.from(row!.page), count: Number(row!.count), next: row!.last === null ? consumer.position : Number(row!.last),
      topics: consumer.topics,
    };
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

  /** Driver errors name the server's host and port: they become a StoreError, the driver's own kept as its cause. */
  private query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    return this.gate.run(async () => {
      try {
        return await this.pool.query<R>(text, values);
      } catch (error) {
        throw storeError(error);
      }
    });
  }
}

/** Readable topic patterns as the queries' regular-expression parameter; null: every topic. */
const expressions = (readable: ReadableTopics): string[] | null => (readable === undefined ? null : postgresPatterns(readable));

interface StreamRow {
  frames: string;
  seqs: string[];
  topics: string[];
  ends: string[];
  visible_end: string;
  pending: boolean;
}
