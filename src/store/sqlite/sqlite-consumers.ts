import type Database from 'better-sqlite3';
import { CONSUMER_COLUMNS, consumerFromRow, decideConsumerCommand, writeOutcome, type ConsumerRow, type ConsumerWrites } from '../consumer-table.js';
import { startText, type ConsumerCommand, type ConsumerOutcome, type ConsumerRecord } from '../consumers.js';

/** A row of the consumers table as both SQLite connections read it: topics as a JSON array's text. */
export type SqliteConsumerRow = Omit<ConsumerRow, 'topics'> & { topics: string | null };

export const sqliteConsumer = (row: SqliteConsumerRow): ConsumerRecord =>
  consumerFromRow({ ...row, topics: row.topics === null ? null : JSON.parse(row.topics) as string[] });

/**
 * The writer's side of the consumers table, on the event store's own connection: SQLite has one writer,
 * and better-sqlite3 runs each command synchronously, so a command always falls between two batches and
 * never contends for the write lock. Each command is its own small transaction. `lastSeq` is the last seq
 * ever committed, which the store keeps: retention may have purged that event, and even forgotten its key,
 * yet a page returned it as `next`, so committing it must stay possible.
 */
export class SqliteConsumerWriter {
  readonly apply: (command: ConsumerCommand) => ConsumerOutcome;

  constructor(db: Database.Database, lastSeq: () => number) {
    const get = db.prepare<[string], SqliteConsumerRow>(`SELECT ${CONSUMER_COLUMNS} FROM consumers WHERE name = ?`);
    const count = db.prepare<[], number>('SELECT count(*) FROM consumers').pluck();
    const insert = db.prepare<[string, string | null, string, number, string, string | null]>(
      'INSERT INTO consumers (name, topics, start, position, created_at, owner) VALUES (?, ?, ?, ?, ?, ?)');
    const commit = db.prepare<[number, string | null, string]>('UPDATE consumers SET position = ?, last_commit_at = ? WHERE name = ?');
    const remove = db.prepare<[string]>('DELETE FROM consumers WHERE name = ?');
    const writes: ConsumerWrites<void> = {
      insert: (c) => void insert.run(c.name, c.topics && JSON.stringify(c.topics), startText(c.start), c.position, c.createdAt, c.owner),
      commit: (c) => void commit.run(c.position, c.lastCommitAt, c.name),
      remove: (name) => void remove.run(name),
    };
    this.apply = db.transaction((command: ConsumerCommand) => {
      const row = get.get(command.name);
      const outcome = decideConsumerCommand(command, { existing: row && sqliteConsumer(row), count: count.get()!, lastSeq: lastSeq() });
      writeOutcome(writes, outcome);
      return outcome;
    });
  }
}
