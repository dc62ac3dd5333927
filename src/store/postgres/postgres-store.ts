import pg from 'pg';
import type { IncomingEvent } from '../../event.js';
import type { RetentionPolicy } from '../../retention.js';
import type { ConsumerCommand, ConsumerOutcome } from '../consumers.js';
import { eventDoc } from '../event-doc.js';
import { applyConsumerCommand } from './postgres-consumers.js';
import { PostgresPurger } from './postgres-purge.js';
import { inTransaction } from './postgres-transaction.js';
import { agoSql, COMMIT_CHANNEL, eventKey, migrate, SEQ_BASE, SEQ_BATCH_BITS, SEQ_HORIZON, XID } from './postgres-schema.js';
import { OutOfTurnError, StoreConflictError, StoreError, type BatchResult, type CommitOrder, type EventStore, type RingCheckpoint, type StoreCounters, type StoreSnapshot, type UpkeepReport } from '../store.js';

/**
 * Connecting or answering slower than this counts as PostgreSQL being unavailable: publishes get 503.
 * The server aborts a slow statement itself (statement_timeout), so its outcome is known; the client-side
 * timeout only catches a server that stopped answering at all.
 */
const CONNECT_TIMEOUT_MS = 3_000;
/** The writer's default; PG_STATEMENT_TIMEOUT_MS sets it. */
const STATEMENT_TIMEOUT_MS = 5_000;
const QUERY_TIMEOUT_MARGIN_MS = 1_000;

/**
 * The server-side limits of every session the aggregator opens, so that PostgreSQL itself ends what a client
 * gave up on or can no longer finish (it hung, froze, or lost its network): a statement, a lock wait, and a
 * transaction left idle. The last bounds how long a frozen replica holding a transaction id holds back
 * every replica's readers (the commit horizon): at most `timeoutMs`.
 */
export const sessionTimeouts = (timeoutMs: number) =>
  ({ statement_timeout: timeoutMs, lock_timeout: timeoutMs, idle_in_transaction_session_timeout: timeoutMs });

/**
 * A pool that fails fast and survives the server going away (the next query reconnects); `onConnect` runs
 * on each new connection before its first query (a failure fails that query). Its single
 * statements (pool.query) destroy a connection that failed; explicit transactions go through
 * postgres-transaction.ts, which does the same.
 */
export function createPool(
  url: string, name: string, max: number, statementTimeoutMs = STATEMENT_TIMEOUT_MS, onConnect?: (client: pg.ClientBase) => Promise<unknown>,
): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url, max, application_name: name, connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    ...sessionTimeouts(statementTimeoutMs), query_timeout: statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS, ...(onConnect && { onConnect }),
  });
  // An idle connection dropped by a server restart must not crash the thread; it is simply replaced.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * SQLSTATEs of a transaction the server rolled back to let others go on: deadlock_detected (a batch waiting
 * for its turn while holding keys another replica's batch waits for, see commitBatch) and
 * serialization_failure. Trying it again is the cure.
 */
const CONFLICTS = new Set(['40P01', '40001']);

/**
 * Store errors reach /readyz and 503 bodies, so their message names only the kind of failure; the driver's
 * own error (host, port, SQL state) stays in `cause`, for the log.
 */
export function storeError(error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  // An error with a severity came from the server; any other is the connection (refused, reset, timed out).
  // So are the server's own "cannot connect now", "shutting down" and connection errors: it is away, not refusing.
  const code = String((error as { code?: unknown }).code ?? '');
  const fromServer = 'severity' in (error as object);
  if (fromServer && CONFLICTS.has(code)) return new StoreConflictError('PostgreSQL aborted the commit to break a conflict', 'PG_CONFLICT', { cause: error });
  return fromServer && !/^(08|57P)/.test(code)
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
 * when referenced, hence `notified` in the result), naming the topics stored as a JSON array so that only
 * their long-polls wake; an empty payload (too many topics for NOTIFY's 8000 bytes) wakes every one.
 *
 * The docs come as one text, joined by a character none of them holds, which is the text's first (see
 * joinedDocs): a text[] parameter made node-postgres escape every quote of every doc, 3-6 ms of a
 * 1,000-event batch on the writer's thread, and the server unescape them.
 *
 * First of all, the statement takes the advisory lock of its turn ($10: the writer numbers its batches), held
 * until it commits or rolls back, which the batch after it waits for (see commitBatch).
 *
 * With DEDUP_WINDOW ($11, ms), a key whose row (event or tombstone) was received longer ago than the window
 * is forgotten at once, whether or not the purge has got to it: `stale` locks those rows, sorted by key
 * like the insert, `forgotten` deletes them, and the insert, which a one-time filter on `forgotten` holds
 * back until the deletes are done, stores the new copy as new, with a seq of this transaction (so the
 * paging argument of postgres-schema.ts holds). Both copies are never visible at once: one transaction
 * swaps them. A replica that waited for another's lock on a stale row finds it gone and its own copy a
 * duplicate of the other's. `forgotten` says whether each row was still retained, from the row it locked,
 * so topic totals stay exact even when the purge tombstoned it meanwhile. Without a window, `forgotten` is
 * empty and the statement is the plain insert.
 */
/** NOTIFY's payload must be shorter than 8000 bytes. */
const MAX_NOTIFY_BYTES = 8000;
const commitBatchSql = (windowed: boolean) => `
  WITH turn AS (
    SELECT pg_advisory_xact_lock(hashtext($4), $10)
  ), batch AS (
    SELECT e.* FROM turn, unnest($1::text[], $2::text[], string_to_array(substr($3, 2), left($3, 1)), $8::text[])
      WITH ORDINALITY AS e(topic, event_key, doc, received_at, n)
  ), ${windowed ? `stale AS (
    SELECT ev.seq FROM events ev
    WHERE (ev.topic, ev.event_key) IN (SELECT topic, event_key FROM batch) AND ev.received_at < ${agoSql('$11::bigint')}
    ORDER BY ev.topic COLLATE "C", ev.event_key COLLATE "C"
    FOR UPDATE
  ), forgotten AS (
    DELETE FROM events ev USING stale WHERE ev.seq = stale.seq
    RETURNING ev.topic, ev.doc IS NOT NULL AS retained, coalesce(octet_length(ev.doc), 0) AS bytes
  )` : `forgotten AS (SELECT NULL::text AS topic, false AS retained, 0 AS bytes WHERE false)`}, inserted AS (
    INSERT INTO events (seq, topic, event_key, doc, replica, received_at)
    SELECT ${SEQ_BASE} + e.n, e.topic, e.event_key, e.doc, $4, e.received_at
    FROM batch e ${windowed ? 'WHERE (SELECT count(*) FROM forgotten) >= 0' : ''}
    ORDER BY e.topic COLLATE "C", e.event_key COLLATE "C", e.n
    ON CONFLICT (topic, event_key) DO NOTHING
    RETURNING seq, topic, octet_length(doc) AS bytes
  ), mine AS (
    INSERT INTO replica_counters AS c (replica, lane, unique_processed, duplicate_dropped, keys_forgotten)
    SELECT $4, $9, count(*), $5 - count(*), (SELECT count(*) FROM forgotten) FROM inserted
    ON CONFLICT (replica, lane) DO UPDATE SET unique_processed = c.unique_processed + excluded.unique_processed,
                                        duplicate_dropped = c.duplicate_dropped + excluded.duplicate_dropped,
                                        keys_forgotten = c.keys_forgotten + excluded.keys_forgotten
    RETURNING unique_processed, duplicate_dropped
  ), topics AS (
    INSERT INTO topic_counts AS t (topic, replica, lane, events, bytes, changed)
    SELECT topic, $4, $9, sum(events), sum(bytes), ${SEQ_BASE} FROM (
      SELECT topic, 1 AS events, bytes FROM inserted
      UNION ALL SELECT topic, -1, -bytes FROM forgotten WHERE retained
    ) delta GROUP BY topic
    ON CONFLICT (topic, replica, lane) DO UPDATE SET events = t.events + excluded.events, bytes = t.bytes + excluded.bytes,
                                                     changed = excluded.changed
  ), checkpoint AS (
    INSERT INTO ring_checkpoints (replica, lane, epoch, position, xid) VALUES ($4, $9, $6, $7, ${XID})
    ON CONFLICT (replica, lane) DO UPDATE SET epoch = excluded.epoch, position = excluded.position, xid = excluded.xid
  ), others AS (
    SELECT coalesce(sum(unique_processed), 0) AS unique, coalesce(sum(duplicate_dropped), 0) AS duplicates
    FROM replica_counters WHERE (replica, lane) <> ($4, $9)
  ), notified AS (
    SELECT pg_notify('${COMMIT_CHANNEL}', CASE WHEN octet_length(touched) < ${MAX_NOTIFY_BYTES} THEN touched ELSE '' END)
    FROM (SELECT json_agg(DISTINCT topic)::text AS touched FROM inserted HAVING count(*) > 0) stored
  )
  SELECT (SELECT coalesce(array_agg(seq), '{}') FROM inserted) AS seqs, (SELECT count(*) FROM notified) AS notified,
         others.unique + mine.unique_processed AS unique, others.duplicates + mine.duplicate_dropped AS duplicates
  FROM others, mine`;
const COMMIT_BATCH = commitBatchSql(false);
const COMMIT_BATCH_WINDOWED = commitBatchSql(true);

const POSITION_MASK = 2 ** SEQ_BATCH_BITS;
const TOTALS = 'SELECT sum(unique_processed) AS unique, sum(duplicate_dropped) AS duplicates FROM replica_counters';
/** The totals, and what the other replicas ($1 excluded) stored or dropped: when it moves, they are committing. */
const TOTALS_AND_OTHERS = `
  SELECT sum(unique_processed) AS unique, sum(duplicate_dropped) AS duplicates,
         sum(unique_processed + duplicate_dropped) FILTER (WHERE replica <> $1) AS others
  FROM replica_counters`;
/** Whether the batch before committed (lane $2 stored its position $4 of epoch $3), and the store-wide totals now. */
const AFTER_TURN = `
  SELECT EXISTS (SELECT 1 FROM ring_checkpoints WHERE replica = $1 AND lane = $2 AND epoch = $3 AND position = $4) AS done,
         sum(unique_processed) AS unique, sum(duplicate_dropped) AS duplicates
  FROM replica_counters`;

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
 * PG_WRITE_CONNECTIONS=auto: this many lanes, all in use while no other replica commits to the store, one
 * while another has committed within OTHERS_QUIET_MS (performance.md, issue 22: two lanes lift a lone
 * replica by a quarter; two replicas gain nothing from them, and their batches then can deadlock).
 */
const AUTO_LANES = 2;
const OTHERS_QUIET_MS = 5_000;
/**
 * A replica starting beside others that commit would deadlock with them until it saw them: it starts with
 * one lane, for long enough that the writer's snapshot (once a second) has looked twice.
 */
const START_WATCH_MS = 2_000;

/** One of the connections a replica commits batches on, with what its last commit left unknown. */
interface Lane {
  pool: pg.Pool;
  /** The last commit on this lane failed in a way that may have committed it anyway (see commitBatch). */
  inDoubt: boolean;
}

/**
 * The scale-out store: replicas share one PostgreSQL database; each batch is one statement.
 *
 * `commitsInFlight` connections (lanes) for the batches, one for the single-statement reads (lane 0's
 * when it is the only lane), and one for the explicit transactions (consumer commands, purge steps). A batch is one statement,
 * or, when it waits for the one before it, that statement in a transaction of inTransaction's, which ends
 * with its connection on any error: whatever goes wrong — a client timeout, a connection lost half-way, a
 * bug — a batch can never run inside a transaction left open and be acknowledged with it uncommitted; and
 * a command waits for a purge step, not for a batch. Within a replica, batches and purge steps never write
 * the same rows at once: purge steps run while no batch is in flight, and consumer commands touch only the
 * consumers table. Concurrent batches of one replica are like batches of several replicas (each lane has
 * rows of its own, see postgres-schema.ts), which the commit horizon already orders for readers.
 */
export class PostgresEventStore implements EventStore {
  readonly shared = true;
  /** The commit horizon of the last topic read: changes() reads rows changed from here on. */
  private topicsHorizon = '0';
  private readonly purger: PostgresPurger;
  /** With PG_WRITE_CONNECTIONS=auto: the other replicas' counters at the last snapshot, and when they last moved. */
  private others: { written: string | null; movedAt: number } | undefined;

  /** `reads`: for the single-statement reads (see open). */
  private constructor(private readonly lanes: Lane[], private readonly reads: pg.Pool, private readonly transactions: pg.Pool,
    private readonly replica: string, private readonly policy: RetentionPolicy, private readonly adaptive: boolean) {
    this.purger = new PostgresPurger(transactions, replica, policy);
  }

  get commitsInFlight(): number {
    return this.lanes.length;
  }

  /** With `auto` lanes, one while another replica committed lately (seen by snapshot() and changes()). */
  get lanesInUse(): number {
    const othersBusy = this.others !== undefined && performance.now() - this.others.movedAt < OTHERS_QUIET_MS;
    return this.adaptive && othersBusy ? 1 : this.lanes.length;
  }

  /**
   * `policy`: what retention purges (by default nothing) and how long keys are remembered (by default forever);
   * `writeConnections`: how many batches may commit at once, or `auto` (AUTO_LANES).
   */
  static async open(url: string, replica: string, policy: RetentionPolicy = { rules: [], dedupWindowMs: undefined },
    statementTimeoutMs = STATEMENT_TIMEOUT_MS, writeConnections: number | 'auto' = 1): Promise<PostgresEventStore> {
    const adaptive = writeConnections === 'auto';
    const lanes = Array.from({ length: adaptive ? AUTO_LANES : writeConnections }, (_, i) =>
      ({ pool: createPool(url, `pubsub-aggregator writer ${replica}${i > 0 ? ` lane ${i}` : ''}`, 1, statementTimeoutMs), inDoubt: false }));
    // With one lane, the writer reads only between its commits, on the lane's connection; with several, a
    // read would queue behind whichever commit lane 0 has in flight (one waiting on a lock for seconds made
    // the pool's connect timeout call the store unreachable), so reads get a connection of their own.
    const reads = lanes.length > 1 ? createPool(url, `pubsub-aggregator writer reads ${replica}`, 1, statementTimeoutMs) : lanes[0]!.pool;
    const transactions = createPool(url, `pubsub-aggregator writer transactions ${replica}`, 1, statementTimeoutMs);
    const pools = [...new Set([...lanes.map((lane) => lane.pool), reads, transactions])];
    try {
      await migrate(lanes[0]!.pool);
    } catch (error) {
      await Promise.all(pools.map((pool) => pool.end()));
      throw storeError(error);
    }
    return new PostgresEventStore(lanes, reads, transactions, replica, policy, adaptive);
  }

  snapshot(): Promise<StoreSnapshot> {
    return this.readTopics(ALL_TOPICS, []);
  }

  changes(): Promise<StoreSnapshot> {
    return this.readTopics(CHANGED_TOPICS, [this.topicsHorizon]);
  }

  private async readTopics(query: string, values: string[]): Promise<StoreSnapshot> {
    try {
      const { rows: [totals] } = await this.reads.query<Totals & { others: string | null }>(TOTALS_AND_OTHERS, [this.replica]);
      const { rows: [row] } = await this.reads.query<{ horizon: string; topics: string[]; events: string[] }>(query, values);
      this.topicsHorizon = row!.horizon;
      if (this.others?.written !== totals!.others) {
        // The first snapshot only sets the mark (what others stored before this replica started is history),
        // and the watch at the start.
        const now = performance.now();
        this.others = { written: totals!.others, movedAt: this.others ? now : now - OTHERS_QUIET_MS + START_WATCH_MS };
      }
      return {
        counters: toCounters(totals),
        topicEvents: new Map(row!.topics.map((topic, i) => [topic, Number(row!.events[i])])),
      };
    } catch (error) {
      throw storeError(error);
    }
  }

  /** The checkpoint of the ring this replica wrote last: its lanes commit in ring order, so the furthest lane's. */
  async checkpoint(): Promise<RingCheckpoint | undefined> {
    try {
      const { rows } = await this.reads.query<{ epoch: string; position: string }>(`
        SELECT epoch, position FROM ring_checkpoints
        WHERE replica = $1 AND epoch = (SELECT epoch FROM ring_checkpoints WHERE replica = $1 ORDER BY xid DESC LIMIT 1)`, [this.replica]);
      if (rows.length === 0) return undefined;
      return { epoch: rows[0]!.epoch, position: rows.map((row) => Number(row.position)).reduce((a, b) => (ahead(b, a) > 0 ? b : a)) };
    } catch (error) {
      throw storeError(error);
    }
  }

  /**
   * With `order.after`, the batch commits in an explicit transaction whose COMMIT waits for the batch before
   * it, so that batches become durable in ring order: a crash loses only a tail, and the checkpoint of the
   * last commit covers every record before it. It waits inside PostgreSQL, on that batch's turn lock, so
   * that the server sees the wait: a cycle with other replicas' batches over their keys is a deadlock it
   * breaks (deadlock_timeout) rather than one the lock timeout ends. Should that batch have rolled back
   * instead, this one rolls back too (OutOfTurnError) and the writer tries it again after it.
   */
  async commitBatch(events: readonly IncomingEvent[], checkpoint: RingCheckpoint, order: CommitOrder = { lane: 0, turn: 0 }):
    Promise<BatchResult> {
    const lane = this.lanes[order.lane]!;
    try {
      // A connection lost while committing leaves the outcome unknown: if that batch did commit, its
      // results are read back rather than the batch being retried into "all duplicates".
      const earlier = lane.inDoubt ? await this.committedBatch(lane, order.lane, events, checkpoint) : undefined;
      lane.inDoubt = false;
      if (earlier) return earlier;
      const window = this.policy.dedupWindowMs;
      const values = [events.map((e) => e.topic), events.map((e) => eventKey(e.eventId)), joinedDocs(events), this.replica,
        events.length + (order.heldBack ?? 0), checkpoint.epoch, checkpoint.position, events.map((e) => e.receivedAt), order.lane, order.turn];
      const query = window === undefined
        ? { name: 'commit-batch', text: COMMIT_BATCH, values }
        : { name: 'commit-batch-windowed', text: COMMIT_BATCH_WINDOWED, values: [...values, window] };
      const { after } = order;
      const { rows: [row] } = after === undefined
        ? await lane.pool.query<CommitRow>(query)
        : await inTransaction(lane.pool, async (client) => {
          const { rows: [stored] } = await client.query<CommitRow>(query);
          await client.query({ name: 'wait-turn', text: 'SELECT pg_advisory_xact_lock(hashtext($1), $2)', values: [this.replica, after.turn] });
          // The totals again: the statement's own were read before the batches it waited for committed.
          const { rows: [turn] } = await client.query<{ done: boolean } & Totals>({
            name: 'turn-committed', text: AFTER_TURN, values: [this.replica, after.lane, checkpoint.epoch, after.position],
          });
          if (!turn!.done) throw new OutOfTurnError();
          return { rows: [{ ...stored!, unique: turn!.unique, duplicates: turn!.duplicates }] };
        });
      return batchResult(events, row!.seqs, row!);
    } catch (error) {
      // An error the server reported (it has a severity) rolled the statement back; any other may not have.
      lane.inDoubt = !(error instanceof Error && 'severity' in error) && !(error instanceof OutOfTurnError);
      throw storeError(error);
    }
  }

  /** The results of this very batch if an earlier attempt committed it, found by its lane's checkpoint. */
  private async committedBatch(lane: Lane, index: number, events: readonly IncomingEvent[], checkpoint: RingCheckpoint):
    Promise<BatchResult | undefined> {
    const { rows: [stored] } = await lane.pool.query<{ epoch: string; position: string; xid: string }>(
      'SELECT epoch, position, xid FROM ring_checkpoints WHERE replica = $1 AND lane = $2', [this.replica, index]);
    // Positions only grow within an epoch, so only this batch's commit can have stored this one.
    if (stored?.epoch !== checkpoint.epoch || Number(stored.position) !== checkpoint.position) return undefined;
    const base = BigInt(stored.xid) << BigInt(SEQ_BATCH_BITS);
    const [inserted, totals] = await Promise.all([
      lane.pool.query<{ seq: string }>('SELECT seq FROM events WHERE seq > $1 AND seq < $2',
        [base.toString(), (base + BigInt(POSITION_MASK)).toString()]),
      lane.pool.query<Totals>(TOTALS),
    ]);
    return batchResult(events, inserted.rows.map((r) => r.seq), totals.rows[0]);
  }

  async applyConsumerCommand(command: ConsumerCommand): Promise<ConsumerOutcome> {
    try {
      return await applyConsumerCommand(this.transactions, command);
    } catch (error) {
      throw storeError(error);
    }
  }

  async upkeep(budgetMs: number): Promise<UpkeepReport> {
    try {
      return await this.purger.upkeep(budgetMs);
    } catch (error) {
      throw storeError(error);
    }
  }

  async close(): Promise<void> {
    const pools = new Set([...this.lanes.map((lane) => lane.pool), this.reads, this.transactions]);
    await Promise.all([...pools].map((pool) => pool.end()));
  }
}

/** How far ring position `a` lies past `b`: positions count bytes modulo 2^32 (see ring.ts). */
const ahead = (a: number, b: number): number => (a - b) | 0;

interface Totals {
  unique: string | null;
  duplicates: string | null;
}

type CommitRow = { seqs: string[] } & Totals;

function toCounters(row: Totals | undefined): StoreCounters {
  return { uniqueProcessed: Number(row?.unique ?? 0), duplicateDropped: Number(row?.duplicates ?? 0) };
}

/**
 * The events' docs as one text: a separator none of them holds, then the docs joined by it. JSON text never
 * holds a raw control character, so it is \x01; the search only guards against a doc that is not JSON.
 */
function joinedDocs(events: readonly IncomingEvent[]): string {
  const docs = events.map(eventDoc);
  for (let code = 1; code < 32; code++) {
    const separator = String.fromCharCode(code);
    if (!docs.some((doc) => doc.includes(separator))) return separator + docs.join(separator);
  }
  throw new StoreError('no separator for the batch: every control character occurs in its docs', 'PG_ERROR');
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
