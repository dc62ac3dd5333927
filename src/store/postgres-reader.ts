import type pg from 'pg';
import { SEQ_HORIZON } from './postgres-schema.js';
import { createPool } from './postgres-store.js';
import type { EventPageQuery, EventReader } from './store.js';

/*
 * Each stored doc is the event's JSON without its seq, so a page is assembled as text by PostgreSQL and
 * sent to the socket as one string. Only rows below the commit horizon are returned (see the schema).
 */
const PAGE_JSON = `coalesce('[' || string_agg('{"seq":' || seq || ',' || substr(doc, 2), ',' ORDER BY seq) || ']', '[]')`;

/** /events on PostgreSQL: store-wide, every replica's events, in commit-horizon (seq) order. */
export class PostgresEventReader implements EventReader {
  private readonly pool: pg.Pool;

  constructor(url: string, replica: string) {
    this.pool = createPool(url, `pubsub-aggregator reader ${replica}`, 4);
  }

  async page({ topic, after, limit }: EventPageQuery): Promise<string> {
    const { rows } = await this.pool.query<{ page: string }>(
      `SELECT ${PAGE_JSON} AS page FROM (
         SELECT seq, doc FROM events
         WHERE seq > $1 AND seq < ${SEQ_HORIZON} AND ($3::text IS NULL OR topic = $3)
         ORDER BY seq LIMIT $2) page`,
      [after, limit, topic ?? null]);
    return rows[0]!.page;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
