import Database from 'better-sqlite3';
import type { EventPageQuery, EventReader } from './store.js';

/*
 * SQLite builds the JSON array itself, so a page of up to 10,000 events goes from the database to the
 * socket as one string, with each stored payload embedded as JSON rather than re-parsed.
 */
const PAGE_JSON = `json_group_array(json_object(
    'seq', seq, 'topic', topic, 'event_id', event_id, 'timestamp', timestamp,
    'source', source, 'payload', json(payload), 'received_at', received_at) ORDER BY seq)`;

/** A read-only connection of its own: in WAL mode it reads committed data while the consumer writes. */
export class SqliteEventReader implements EventReader {
  private readonly db: Database.Database;
  private readonly all;
  private readonly byTopic;

  constructor(path: string) {
    this.db = new Database(path, { readonly: true, fileMustExist: true });
    this.all = this.db
      .prepare<[number, number], string>(
        `SELECT ${PAGE_JSON} FROM (SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?)`,
      )
      .pluck();
    this.byTopic = this.db
      .prepare<[string, number, number], string>(
        `SELECT ${PAGE_JSON} FROM (SELECT * FROM events WHERE topic = ? AND seq > ? ORDER BY seq LIMIT ?)`,
      )
      .pluck();
  }

  page({ topic, after, limit }: EventPageQuery): string {
    return topic === undefined ? this.all.get(after, limit)! : this.byTopic.get(topic, after, limit)!;
  }

  close(): void {
    this.db.close();
  }
}
