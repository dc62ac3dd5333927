import {
  conflictingConsumer, consumerLimit, parseStart, refuseActor, refuseCommit, sameDefinition, unknownConsumer,
  type ConsumerCommand, type ConsumerOutcome, type ConsumerRecord,
} from './consumers.js';

/*
 * The consumers table as both backends keep it: its columns, its rows as records, and the one algorithm
 * that turns a command into an outcome. A backend only reads what the algorithm needs (ConsumerFacts) and
 * writes what it decided (ConsumerWrites), both in one transaction of its own that holds the row.
 */

export const CONSUMER_COLUMNS = 'name, topics, start, position, created_at, last_commit_at, owner';

/** A consumers row once the driver has read it, topics decoded (SQLite stores a JSON array, PostgreSQL a text[]). */
export interface ConsumerRow {
  name: string;
  topics: string[] | null;
  start: string;
  /** A bigint comes back from PostgreSQL as text. */
  position: number | string;
  created_at: string;
  last_commit_at: string | null;
  owner: string | null;
}

export function consumerFromRow(row: ConsumerRow): ConsumerRecord {
  return {
    name: row.name, topics: row.topics, start: parseStart(row.start), position: Number(row.position),
    createdAt: row.created_at, lastCommitAt: row.last_commit_at, owner: row.owner,
  };
}

/** What deciding a command takes, read in the command's transaction. */
export interface ConsumerFacts {
  /** The consumer the command names, if it exists (locked until the transaction ends). */
  existing: ConsumerRecord | undefined;
  /** How many consumers exist. */
  count: number;
  /**
   * The last seq ever committed that a reader may see: `latest` starts there, and a commit may reach it even
   * after retention purged that event, since a page returned it as `next`.
   */
  lastSeq: number;
}

/**
 * What `command` comes to. An outcome `created` or `committed` carries the row as it is to be stored, and
 * `deleted` the row to delete: the backend writes it (writeOutcome), and the answer is what was written.
 */
export function decideConsumerCommand(command: ConsumerCommand, facts: ConsumerFacts, now = new Date().toISOString()): ConsumerOutcome {
  const { existing, count, lastSeq } = facts;
  const forbidden = refuseActor(existing, command);
  if (forbidden) return forbidden;
  const { name } = command;
  switch (command.kind) {
    case 'create': {
      const { definition, maxConsumers } = command;
      if (existing) return sameDefinition(existing, definition) ? { kind: 'exists', consumer: existing } : conflictingConsumer(name);
      if (count >= maxConsumers) return consumerLimit(maxConsumers);
      const { start, topics } = definition;
      const position = start === 'earliest' ? 0 : start === 'latest' ? lastSeq : start;
      return {
        kind: 'created',
        consumer: { name, topics, start, position, createdAt: now, lastCommitAt: null, owner: command.actor?.token ?? null },
      };
    }
    case 'commit': {
      if (!existing) return unknownConsumer(name);
      const refused = refuseCommit(name, existing.position, command.seq, command.rewind, lastSeq);
      if (refused) return refused;
      return { kind: 'committed', consumer: { ...existing, position: command.seq, lastCommitAt: now } };
    }
    case 'delete':
      if (!existing) return unknownConsumer(name);
      return { kind: 'deleted', consumer: existing };
  }
}

/** A backend's three writes to the consumers table; each returns `R` (void, or a promise of it). */
export interface ConsumerWrites<R> {
  insert(consumer: ConsumerRecord): R;
  /** Stores the consumer's new position and lastCommitAt. */
  commit(consumer: ConsumerRecord): R;
  remove(name: string): R;
}

/** Makes the write an outcome stands for; refusals and `exists` write nothing. */
export function writeOutcome<R>(writes: ConsumerWrites<R>, outcome: ConsumerOutcome): R | undefined {
  switch (outcome.kind) {
    case 'created':
      return writes.insert(outcome.consumer);
    case 'committed':
      return writes.commit(outcome.consumer);
    case 'deleted':
      return writes.remove(outcome.consumer.name);
    default:
      return undefined;
  }
}
