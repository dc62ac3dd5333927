import type pg from 'pg';
import { CONSUMER_COLUMNS, consumerFromRow, decideConsumerCommand, writeOutcome, type ConsumerRow, type ConsumerWrites } from '../consumer-table.js';
import { startText, type ConsumerCommand, type ConsumerOutcome } from '../consumers.js';
import { CONSUMER_CREATE_LOCK, SEQ_HORIZON } from './postgres-schema.js';
import { inTransaction } from './postgres-transaction.js';

/**
 * What deciding a command takes besides its row: how many consumers exist, and the last seq ever committed
 * that a reader may see. Rows at or above the commit horizon may still be joined by lower ones. A purge
 * keeps a tombstone row, but DEDUP_WINDOW deletes tombstones too: the topics' purge horizons remember the
 * highest purged seq, which a page may have returned as `next` before the purge.
 */
const FACTS = `SELECT (SELECT count(*) FROM consumers) AS count,
  greatest((SELECT max(seq) FROM events WHERE seq < ${SEQ_HORIZON}), (SELECT max(purged_through) FROM topic_purges), 0) AS last_seq`;

const writesOn = (client: pg.PoolClient): ConsumerWrites<Promise<unknown>> => ({
  insert: (c) => client.query('INSERT INTO consumers (name, topics, start, position, created_at, owner) VALUES ($1, $2, $3, $4, $5, $6)',
    [c.name, c.topics, startText(c.start), c.position, c.createdAt, c.owner]),
  commit: (c) => client.query('UPDATE consumers SET position = $2, last_commit_at = $3 WHERE name = $1', [c.name, c.position, c.lastCommitAt]),
  remove: (name) => client.query('DELETE FROM consumers WHERE name = $1', [name]),
});

/**
 * A consumer command in a transaction of its own (inTransaction), on the writer's connection for
 * transactions, never the batches' (see PostgresEventStore). The row is locked (FOR UPDATE) so replicas
 * committing the same consumer at once take turns, and creates take one lock, so two replicas cannot both
 * pass the MAX_CONSUMERS check. Driver errors are the caller's to translate.
 */
export function applyConsumerCommand(pool: pg.Pool, command: ConsumerCommand): Promise<ConsumerOutcome> {
  return inTransaction(pool, async (client) => {
    if (command.kind === 'create') await client.query('SELECT pg_advisory_xact_lock($1)', [CONSUMER_CREATE_LOCK]);
    const { rows: [row] } = await client.query<ConsumerRow>(`SELECT ${CONSUMER_COLUMNS} FROM consumers WHERE name = $1 FOR UPDATE`, [command.name]);
    const { rows: [facts] } = await client.query<{ count: string; last_seq: string }>(FACTS);
    const outcome = decideConsumerCommand(command, {
      existing: row && consumerFromRow(row), count: Number(facts!.count), lastSeq: Number(facts!.last_seq),
    });
    await writeOutcome(writesOn(client), outcome);
    return outcome;
  });
}
