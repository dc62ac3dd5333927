import pg from 'pg';
import type { IncomingEvent } from '../event.js';
import type { ConsumerCommand, ConsumerOutcome } from './consumers.js';
import { eventDoc } from './event-doc.js';
import { applyConsumerCommand } from './postgres-consumers.js';
import { COMMIT_CHANNEL, eventKey, migrate, SEQ_BASE, SEQ_BATCH_BITS, SEQ_HORIZON, XID } from './postgres-schema.js';
import { StoreError, type BatchResult, type EventStore, type RingCheckpoint, type StoreCounters, type StoreSnapshot, type Upkeep } from './store.js';

/**
 * Connecting or answering slower than this counts as PostgreSQL being unavailable: publishes get 503.
 * The server aborts a slow statement itself (statement_timeout), so its outcome is known; the client-side
 * timeout only catches a server that stopped answering at all.
 */
const CONNECT_TIMEOUT_MS = 3_000;
const STATEMENT_TIMEOUT_MS = 5_000;
const QUERY_TIMEOUT_MARGIN_MS = 1_000;

/** A pool that fails fast and survives the server going away (the next query reconnects). */
export function createPool(url: string, name: string, max: number, statementTimeoutMs = STATEMENT_TIMEOUT_MS): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url, max, application_name: name, connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: statementTimeoutMs, query_timeout: statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS,
  });
  // An idle connection dropped by a server restart must not crash the thread; it is simply replaced.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * Store errors reach /readyz and 503 bodies, so their message names only the kind of failure; the driver's
 * own error (host, port, SQL state) stays in `cause`, for the log.
 */
export function storeError(error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  // An error with a severity came from the server; any other is the connection (refused, reset, timed out).
  return 'severity' in (error as object)
    ? new StoreError('PostgreSQL refused the statement', 'PG_ERROR', { cause: error })
    : new StoreError('PostgreSQL is unreachable', 'PG_UNAVAILABLE', { cause: error });
}

/*
 * One statement per batch, so one round trip and one (implicit) transaction. Rows go in sorted by key,
 * so two replicas inserting overlapping keys wait for each other in the same order and cannot deadlock;
 * the unique (topic, event_key) constraint decides which copy is first across every replica, and
 * ON CONFLICT DO NOTHING drops the rest, inside the batch too (the position n breaks ties, so the earliest
 * copy wins). seq carries the position, so the returned seqs say which events of the batch were new.
 * In the same statement: this replica's counters and topic totals (rows of its own, so replicas never
 * fight over a hot row), its ring checkpoint, the store-wide counters after the batch (the other
 * replicas' rows plus this one's new values, as a statement does not see its own writes), and, when it
 * stored rows, a NOTIFY that wakes every replica's subscribers at commit (a SELECT in a WITH runs only
 * when referenced, hence `notified` in the result).
 */
const COMMIT_BATCH = `
  WITH inserted AS (
    INSERT INTO events (seq, topic, event_key, doc, replica, received_at)
    SELECT ${SEQ_BASE} + e.n, e.topic, e.event_key, e.doc, $4, e.received_at
    FROM unnest($1::text[], $2::text[], $3::text[], $8::text[]) WITH ORDINALITY AS e(topic, event_key, doc, received_at, n)
    ORDER BY e.topic COLLATE "C", e.event_key COLLATE "C", e.n
    ON CONFLICT (topic, event_key) DO NOTHING
    RETURNING seq, topic
  ), mine AS (
    INSERT INTO replica_counters AS c (replica, unique_processed, duplicate_dropped)
    SELECT $4, count(*), $5 - count(*) FROM inserted
    ON CONFLICT (replica) DO UPDATE SET unique_processed = c.unique_processed + excluded.unique_processed,
                                        duplicate_dropped = c.duplicate_dropped + excluded.duplicate_dropped
    RETURNING unique_processed, duplicate_dropped
  ), topics AS (
    INSERT INTO topic_counts AS t (topic, replica, events, changed)
    SELECT topic, $4, count(*), ${SEQ_BASE} FROM inserted GROUP BY topic
    ON CONFLICT (topic, replica) DO UPDATE SET events = t.events + excluded.events, changed = excluded.changed
  ), checkpoint AS (
    INSERT INTO ring_checkpoints (replica, epoch, position, xid) VALUES ($4, $6, $7, ${XID})
    ON CONFLICT (replica) DO UPDATE SET epoch = excluded.epoch, position = excluded.position, xid = excluded.xid
  ), others AS (
    SELECT coalesce(sum(unique_processed), 0) AS unique, coalesce(sum(duplicate_dropped), 0) AS duplicates
    FROM replica_counters WHERE replica <> $4
  ), notified AS (
    SELECT pg_notify('${COMMIT_CHANNEL}', '') FROM (SELECT 1 FROM inserted LIMIT 1) stored
  )
  SELECT (SELECT coalesce(array_agg(seq), '{}') FROM inserted) AS seqs, (SELECT count(*) FROM notified) AS notified,
         others.unique + mine.unique_processed AS unique, others.duplicates + mine.duplicate_dropped AS duplicates
  FROM others, mine`;

const POSITION_MASK = 2 ** SEQ_BATCH_BITS;
const TOTALS = 'SELECT sum(unique_processed) AS unique, sum(duplicate_dropped) AS duplicates FROM replica_counters';

/**
 * Store-wide totals (summed over replicas) of the topics `filter` picks, with the commit horizon of the
 * same statement snapshot. `changed` of a row is the seq base of the transaction that last wrote it, so
 * the rows of any transaction below the horizon are visible to this snapshot: every such transaction has
 * ended. A refresh that reads `changed` in [previous horizon, this horizon) therefore misses no change:
 * a row written at or above the horizon is read by a later refresh (or, rewritten again meanwhile, by the
 * one that covers its newer `changed`), and the totals it reads include everything committed so far.
 */
const topicTotals = (filter: string) => `
  WITH horizon AS (SELECT ${SEQ_HORIZON} AS seq),
  totals AS (SELECT topic, sum(events) AS events FROM topic_counts ${filter} GROUP BY topic)
  SELECT (SELECT seq FROM horizon) AS horizon,
         coalesce(array_agg(topic), '{}') AS topics, coalesce(array_agg(events), '{}') AS events FROM totals`;
const ALL_TOPICS = topicTotals('');
const CHANGED_TOPICS = topicTotals(
  'WHERE topic IN (SELECT c.topic FROM topic_counts c, horizon WHERE c.changed >= $1 AND c.changed < horizon.seq)');

/**
 * The scale-out store: replicas share one PostgreSQL database; each batch is one statement.
 */
export class PostgresEventStore implements EventStore {
  readonly shared = true;
  /** The last commit failed in a way that may have committed it anyway (see commitBatch). */
  private inDoubt = false;
  /** The commit horizon of the last topic read: changes() reads rows changed from here on. */
  private topicsHorizon = '0';

  private constructor(private readonly pool: pg.Pool, private readonly replica: string) {}

  static async open(url: string, replica: string): Promise<PostgresEventStore> {
    const pool = createPool(url, `pubsub-aggregator consumer ${replica}`, 1);
    try {
      await migrate(pool);
    } catch (error) {
      await pool.end();
      throw error;
    }
    return new PostgresEventStore(pool, replica);
  }

  snapshot(): Promise<StoreSnapshot> {
    return this.readTopics(ALL_TOPICS, []);
  }

  changes(): Promise<StoreSnapshot> {
    return this.readTopics(CHANGED_TOPICS, [this.topicsHorizon]);
  }

  private async readTopics(query: string, values: string[]): Promise<StoreSnapshot> {
    try {
      const counters = await this.pool.query<Totals>(TOTALS);
      const { rows: [row] } = await this.pool.query<{ horizon: string; topics: string[]; events: string[] }>(query, values);
      this.topicsHorizon = row!.horizon;
      return {
        counters: toCounters(counters.rows[0]),
        topicEvents: new Map(row!.topics.map((topic, i) => [topic, Number(row!.events[i])])),
      };
    } catch (error) {
      throw storeError(error);
    }
  }

  async checkpoint(): Promise<RingCheckpoint | undefined> {
    const { rows } = await this.pool.query<{ epoch: string; position: string }>(
      'SELECT epoch, position FROM ring_checkpoints WHERE replica = $1', [this.replica]);
    return rows[0] && { epoch: rows[0].epoch, position: Number(rows[0].position) };
  }

  async commitBatch(events: readonly IncomingEvent[], checkpoint: RingCheckpoint): Promise<BatchResult> {
    try {
      // A connection lost while committing leaves the outcome unknown: if that batch did commit, its
      // results are read back rather than the batch being retried into "all duplicates".
      const earlier = this.inDoubt ? await this.committedBatch(events, checkpoint) : undefined;
      this.inDoubt = false;
      if (earlier) return earlier;
      const { rows: [row] } = await this.pool.query<{ seqs: string[] } & Totals>(
        { name: 'commit-batch', text: COMMIT_BATCH },
        [events.map((e) => e.topic), events.map((e) => eventKey(e.eventId)), events.map(eventDoc), this.replica,
          events.length, checkpoint.epoch, checkpoint.position, events.map((e) => e.receivedAt)],
      );
      return batchResult(events, row!.seqs, row!);
    } catch (error) {
      // An error the server reported (it has a severity) rolled the statement back; any other may not have.
      this.inDoubt = !(error instanceof Error && 'severity' in error);
      throw storeError(error);
    }
  }

  /** The results of this very batch if an earlier attempt committed it, found by its checkpoint. */
  private async committedBatch(events: readonly IncomingEvent[], checkpoint: RingCheckpoint): Promise<BatchResult | undefined> {
    const { rows: [stored] } = await this.pool.query<{ epoch: string; position: string; xid: string }>(
      'SELECT epoch, position, xid FROM ring_checkpoints WHERE replica = $1', [this.replica]);
    // Positions only grow within an epoch, so only this batch's commit can have stored this one.
    if (stored?.epoch !== checkpoint.epoch || Number(stored.position) !== checkpoint.position) return undefined;
    const base = BigInt(stored.xid) << BigInt(SEQ_BATCH_BITS);
    const [inserted, totals] = await Promise.all([
      this.pool.query<{ seq: string }>('SELECT seq FROM events WHERE seq > $1 AND seq < $2',
        [base.toString(), (base + BigInt(POSITION_MASK)).toString()]),
      this.pool.query<Totals>(TOTALS),
    ]);
    return batchResult(events, inserted.rows.map((r) => r.seq), totals.rows[0]);
  }

  async applyConsumerCommand(command: ConsumerCommand): Promise<ConsumerOutcome> {
    try {
      return await applyConsumerCommand(this.pool, command);
    } catch (error) {
      throw storeError(error);
    }
  }

  maintain(): Upkeep {
    return { pending: false, index: { keys: 0, memoryBytes: 0, hotKeys: 0, segments: 0 }, lastPurge: undefined, topicEvents: new Map() };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

interface Totals {
  unique: string | null;
  duplicates: string | null;
}

function toCounters(row: Totals | undefined): StoreCounters {
  return { uniqueProcessed: Number(row?.unique ?? 0), duplicateDropped: Number(row?.duplicates ?? 0) };
}

/** seq = xid * 2^SEQ_BATCH_BITS + position in the batch (1-based): the seqs stored say which events were new. */
function batchResult(events: readonly IncomingEvent[], seqs: readonly string[], totals: Totals | undefined): BatchResult {
  const isNew = new Uint8Array(events.length);
  const topicEvents = new Map<string, number>();
  let first = Infinity;
  let last = 0;
  for (const text of seqs) {
    const seq = Number(text);
    const index = (seq % POSITION_MASK) - 1;
    isNew[index] = 1;
    const topic = events[index]!.topic;
    topicEvents.set(topic, (topicEvents.get(topic) ?? 0) + 1);
    first = Math.min(first, seq);
    last = Math.max(last, seq);
  }
  return { isNew, topicEvents, seqRange: last > 0 ? { first, last } : undefined, counters: toCounters(totals) };
}
