import type pg from 'pg';
import {
  conflictingConsumer, consumerLimit, parseStart, refuseActor, refuseCommit, sameDefinition, startText, unknownConsumer,
  type ConsumerCommand, type ConsumerOutcome, type ConsumerRecord,
} from '../consumers.js';
import { CONSUMER_CREATE_LOCK, SEQ_HORIZON } from './postgres-schema.js';
import { inTransaction } from './postgres-transaction.js';

/** A row of the consumers table, as the writer and the readers select it. */
export interface PostgresConsumerRow {
  name: string;
  topics: string[] | null;
  start: string;
  position: string;
  created_at: string;
  last_commit_at: string | null;
  owner: string | null;
}

export const CONSUMER_COLUMNS = 'name, topics, start, position, created_at, last_commit_at, owner';

export function consumerFromRow(row: PostgresConsumerRow): ConsumerRecord {
  return {
    name: row.name, topics: row.topics, start: parseStart(row.start), position: Number(row.position),
    createdAt: row.created_at, lastCommitAt: row.last_commit_at, owner: row.owner,
  };
}

/**
 * The last seq ever committed that a reader may see: rows at or above the commit horizon may still be joined
 * by lower ones. A purge keeps a tombstone row, but DEDUP_WINDOW deletes tombstones too: the topics' purge
 * horizons remember the highest purged seq, which a page may have returned as `next` before the purge.
 */
const LAST_SEQ = `SELECT greatest((SELECT max(seq) FROM events WHERE seq < ${SEQ_HORIZON}),
                                  (SELECT max(purged_through) FROM topic_purges), 0) AS seq`;

/**
 * A consumer command in a transaction of its own (inTransaction), on the writer's connection for
 * transactions, never the batches' (see PostgresEventStore). The row is locked (FOR UPDATE) so replicas
 * committing the same consumer at once take turns. Driver errors are the caller's to translate.
 */
export function applyConsumerCommand(pool: pg.Pool, command: ConsumerCommand): Promise<ConsumerOutcome> {
  return inTransaction(pool, async (client) => {
    if (command.kind === 'create') await client.query('SELECT pg_advisory_xact_lock($1)', [CONSUMER_CREATE_LOCK]);
    return run(client, command);
  });
}

async function run(client: pg.PoolClient, command: ConsumerCommand): Promise<ConsumerOutcome> {
  const { name } = command;
  const { rows: [row] } = await client.query<PostgresConsumerRow>(
    `SELECT ${CONSUMER_COLUMNS} FROM consumers WHERE name = $1 FOR UPDATE`, [name]);
  const existing = row && consumerFromRow(row);
  const forbidden = refuseActor(existing, command);
  if (forbidden) return forbidden;
  const lastSeq = async () => Number((await client.query<{ seq: string }>(LAST_SEQ)).rows[0]!.seq);
  switch (command.kind) {
    case 'create': {
      const { definition, maxConsumers } = command;
      if (existing) return sameDefinition(existing, definition) ? { kind: 'exists', consumer: existing } : conflictingConsumer(name);
      const count = (await client.query<{ count: string }>('SELECT count(*) FROM consumers')).rows[0]!.count;
      if (Number(count) >= maxConsumers) return consumerLimit(maxConsumers);
      const { start, topics } = definition;
      const position = start === 'earliest' ? 0 : start === 'latest' ? await lastSeq() : start;
      const { rows: [created] } = await client.query<PostgresConsumerRow>(
        `INSERT INTO consumers (name, topics, start, position, created_at, owner) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${CONSUMER_COLUMNS}`,
        [name, topics, startText(start), position, new Date().toISOString(), command.actor?.token ?? null]);
      return { kind: 'created', consumer: consumerFromRow(created!) };
    }
    case 'commit': {
      if (!existing) return unknownConsumer(name);
      const refused = refuseCommit(name, existing.position, command.seq, command.rewind, await lastSeq());
      if (refused) return refused;
      const { rows: [committed] } = await client.query<PostgresConsumerRow>(
        `UPDATE consumers SET position = $2, last_commit_at = $3 WHERE name = $1 RETURNING ${CONSUMER_COLUMNS}`,
        [name, command.seq, new Date().toISOString()]);
      return { kind: 'committed', consumer: consumerFromRow(committed!) };
    }
    case 'delete':
      if (!existing) return unknownConsumer(name);
      await client.query('DELETE FROM consumers WHERE name = $1', [name]);
      return { kind: 'deleted', consumer: existing };
  }
}
