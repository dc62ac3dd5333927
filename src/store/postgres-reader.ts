import type pg from 'pg';
import { ReadGate } from './read-gate.js';
import { SEQ_HORIZON } from './postgres-schema.js';
import { createPool, storeError } from './postgres-store.js';
import type { ConsumerPage, ConsumerRecord, ConsumerStatus } from './consumers.js';
import { CONSUMER_COLUMNS, consumerFromRow, type PostgresConsumerRow } from './postgres-consumers.js';
import type { EventPageQuery, EventReader, TopicPageQuery } from './store.js';

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
 * the docs kept are read. Only rows below the commit horizon are returned (see the schema).
 */
const pageOf = (topicFilter: string) => `
  SELECT coalesce('[' || string_agg('{"seq":' || seq || ',' || substr(doc, 2), ',' ORDER BY seq) || ']', '[]') AS page,
         count(*) AS count, max(seq) AS last
  FROM (
    SELECT seq, doc, row_number() OVER w AS n, sum(octet_length(doc) + length(seq::text) + 8) OVER w AS bytes
    FROM (
      SELECT seq, doc FROM events
      WHERE seq > $1 AND seq < ${SEQ_HORIZON} AND ${topicFilter}
      ORDER BY seq LIMIT $2
    ) limited
    WINDOW w AS (ORDER BY seq)
  ) sized
  WHERE n = 1 OR 1 + bytes <= $4`;
const PAGE = pageOf('($3::text IS NULL OR topic = $3)');
/** A durable consumer's page: its topics (NULL: every topic). */
const CONSUMER_PAGE = pageOf('($3::text[] IS NULL OR topic = ANY($3::text[]))');

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
    WHERE e.seq > c.position AND e.seq < h.seq AND (c.topics IS NULL OR e.topic = ANY(c.topics))
  ) lag
  LEFT JOIN LATERAL (
    SELECT e.doc FROM events e
    WHERE e.seq > c.position AND e.seq < h.seq AND (c.topics IS NULL OR e.topic = ANY(c.topics))
    ORDER BY e.seq LIMIT 1
  ) first ON true
  WHERE $1::text IS NULL OR c.name = $1
  ORDER BY c.name`;

/** Store-wide counts are the sum of every replica's rows. */
const TOPICS = `
  SELECT topic, sum(events) AS events FROM topic_counts WHERE topic > $1 GROUP BY topic ORDER BY topic LIMIT $2`;

/**
 * /events and /topics on PostgreSQL: store-wide, every replica's events, in commit-horizon (seq) order.
 * The gate bounds the reads in flight (the pool) and waiting; each read has its own statement budget.
 */
export class PostgresEventReader implements EventReader {
  private readonly pool: pg.Pool;
  private readonly gate = new ReadGate({ slots: POOL_SIZE, maxQueued: POSTGRES_MAX_QUEUED_READS, maxWaitMs: MAX_WAIT_MS });

  constructor(url: string, replica: string, private readonly maxPageBytes: number) {
    this.pool = createPool(url, `pubsub-aggregator reader ${replica}`, POOL_SIZE, READ_STATEMENT_TIMEOUT_MS);
  }

  async page({ topic, after, limit }: EventPageQuery): Promise<Uint8Array> {
    const { rows } = await this.query<{ page: string }>(PAGE, [after, limit, topic ?? null, this.maxPageBytes]);
    return Buffer.from(rows[0]!.page);
  }

  async topics({ after, limit }: TopicPageQuery): Promise<Uint8Array> {
    const { rows } = await this.query<{ topic: string; events: string }>(TOPICS, [after, limit]);
    return Buffer.from(JSON.stringify(rows.map((r) => ({ topic: r.topic, events: Number(r.events) }))));
  }

  async consumer(name: string): Promise<ConsumerRecord | undefined> {
    const { rows: [row] } = await this.query<PostgresConsumerRow>(`SELECT ${CONSUMER_COLUMNS} FROM consumers WHERE name = $1`, [name]);
    return row && consumerFromRow(row);
  }

  async consumerStatus(name?: string): Promise<ConsumerStatus[]> {
    const { rows } = await this.query<PostgresConsumerRow & { lag: string; oldest_unconsumed_at: string | null }>(
      CONSUMER_STATUS, [name ?? null]);
    return rows.map((row) => ({ ...consumerFromRow(row), lag: Number(row.lag), oldestUnconsumedAt: row.oldest_unconsumed_at }));
  }

  async consumerPage(name: string, limit: number): Promise<ConsumerPage | undefined> {
    const consumer = await this.consumer(name);
    if (!consumer) return undefined;
    const { rows: [row] } = await this.query<{ page: string; count: string; last: string | null }>(
      CONSUMER_PAGE, [consumer.position, limit, consumer.topics, this.maxPageBytes]);
    return { events: Buffer.from(row!.page), count: Number(row!.count), next: row!.last === null ? consumer.position : Number(row!.last) };
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
