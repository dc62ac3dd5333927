import type pg from 'pg';
import { ReadGate } from './read-gate.js';
import { SEQ_HORIZON } from './postgres-schema.js';
import { createPool, storeError } from './postgres-store.js';
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
const PAGE = `
  SELECT coalesce('[' || string_agg('{"seq":' || seq || ',' || substr(doc, 2), ',' ORDER BY seq) || ']', '[]') AS page
  FROM (
    SELECT seq, doc, row_number() OVER w AS n, sum(octet_length(doc) + length(seq::text) + 8) OVER w AS bytes
    FROM (
      SELECT seq, doc FROM events
      WHERE seq > $1 AND seq < ${SEQ_HORIZON} AND ($3::text IS NULL OR topic = $3)
      ORDER BY seq LIMIT $2
    ) limited
    WINDOW w AS (ORDER BY seq)
  ) sized
  WHERE n = 1 OR 1 + bytes <= $4`;

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
