import type Database from 'better-sqlite3';
import {
  conflictingConsumer, consumerLimit, parseStart, refuseActor, refuseCommit, sameDefinition, startText, unknownConsumer,
  type ConsumerCommand, type ConsumerOutcome, type ConsumerRecord,
} from '../consumers.js';

/** A row of the consumers table as both SQLite connections read it. */
export interface ConsumerRow {
  name: string;
  topics: string | null;
  start: string;
  position: number;
  created_at: string;
  last_commit_at: string | null;
  owner: string | null;
}

export const CONSUMER_COLUMNS = 'name, topics, start, position, created_at, last_commit_at, owner';

export function consumerFromRow(row: ConsumerRow): ConsumerRecord {
  return {
    name: row.name, topics: row.topics === null ? null : JSON.parse(row.topics) as string[], start: parseStart(row.start),
    position: row.position, createdAt: row.created_at, lastCommitAt: row.last_commit_at, owner: row.owner,
  };
}

/**
 * The writer's side of the consumers table, on the event store's own connection: SQLite has one writer,
 * and better-sqlite3 runs each command synchronously, so a command always falls between two batches and
 * never contends for the write lock. Each command is its own small transaction. `lastSeq` is the last seq
 * ever committed, which the store keeps: retention may have purged that event, and even forgotten its key,
 * yet a page returned it as `next`, so committing it must stay possible.
 */
export class SqliteConsumerWriter {
  private readonly statements;
  readonly apply: (command: ConsumerCommand) => ConsumerOutcome;

  constructor(db: Database.Database, private readonly lastSeq: () => number) {
    this.statements = {
      get: db.prepare<[string], ConsumerRow>(`SELECT ${CONSUMER_COLUMNS} FROM consumers WHERE name = ?`),
      count: db.prepare<[], number>('SELECT count(*) FROM consumers').pluck(),
      insert: db.prepare<[string, string | null, string, number, string, string | null]>(
        'INSERT INTO consumers (name, topics, start, position, created_at, owner) VALUES (?, ?, ?, ?, ?, ?)'),
      commit: db.prepare<[number, string, string]>('UPDATE consumers SET position = ?, last_commit_at = ? WHERE name = ?'),
      remove: db.prepare<[string]>('DELETE FROM consumers WHERE name = ?'),
    };
    this.apply = db.transaction((command: ConsumerCommand) => this.run(command));
  }

  private run(command: ConsumerCommand): ConsumerOutcome {
    const { get, count, insert, commit, remove } = this.statements;
    const row = get.get(command.name);
    const existing = row && consumerFromRow(row);
    const forbidden = refuseActor(existing, command);
    if (forbidden) return forbidden;
    switch (command.kind) {
      case 'create': {
        const { name, definition, maxConsumers } = command;
        if (existing) return sameDefinition(existing, definition) ? { kind: 'exists', consumer: existing } : conflictingConsumer(name);
        if (count.get()! >= maxConsumers) return consumerLimit(maxConsumers);
        const { start, topics } = definition;
        const position = start === 'earliest' ? 0 : start === 'latest' ? this.lastSeq() : start;
        insert.run(name, topics && JSON.stringify(topics), startText(start), position, new Date().toISOString(), command.actor?.token ?? null);
        return { kind: 'created', consumer: consumerFromRow(get.get(name)!) };
      }
      case 'commit': {
        if (!existing) return unknownConsumer(command.name);
        const refused = refuseCommit(command.name, existing.position, command.seq, command.rewind, this.lastSeq());
        if (refused) return refused;
        commit.run(command.seq, new Date().toISOString(), command.name);
        return { kind: 'committed', consumer: consumerFromRow(get.get(command.name)!) };
      }
      case 'delete':
        if (!existing) return unknownConsumer(command.name);
        remove.run(command.name);
        return { kind: 'deleted', consumer: existing };
    }
  }
}
