import type pg from 'pg';
import { limitFor, purgesAnything, type RetentionPolicy } from '../../retention.js';
import { agoSql, PURGE_LOCK, SEQ_BASE, SEQ_HORIZON } from './postgres-schema.js';
import { inTransaction } from './postgres-transaction.js';
import type { PurgeReport, UpkeepReport } from '../store.js';

/*
 * Retention on PostgreSQL, in small steps between batches.
 *
 * A purged event keeps its row as a tombstone (doc NULL): the unique (topic, event_key) constraint goes on
 * calling its key a duplicate, across replicas, with no race. Moving purged keys to a table of their own
 * would race: a replica inserting the key while the purge moves it finds it in neither place.
 *
 * Per topic, a step tombstones the oldest retained rows, a chunk of them at most, in seq order: those
 * beyond the newest maxEvents (counted from topic_counts) and the run of those received before the age
 * cutoff (stopping at the first younger one). The purged rows are always a seq-prefix of the topic's rows
 * below the commit horizon: every transaction below it has ended, so no row can later appear under
 * `purged_through`, and a reader behind it resumes from there without skipping anything retained. (An
 * event received earlier than one with a lower seq, possible across replicas, waits for that one.)
 * With DEDUP_WINDOW, tombstones received longer ago than the window are deleted in chunks: their keys are
 * forgotten. The window is an age limit of every topic too (limitFor), so an event never outlives its key.
 *
 * Each step is a transaction that first takes PURGE_LOCK with pg_try_advisory_xact_lock: one replica
 * purges at a time, and the others, finding it taken, leave the work to it. A step waits at most
 * LOCK_TIMEOUT_MS for a row lock (a batch replacing a stale row holds one), then gives up and is retried,
 * so the purge never deadlocks with a batch nor holds one up for long. Counts move in the same
 * transaction: the purging replica's topic_counts rows (sums stay exact; `changed` makes the other replicas
 * re-read the topic), topic_purges, and the total in `purges`.
 */

/**
 * Rows one statement purges or forgets: at most MAX_CHUNK, for short transactions and row locks, and fewer
 * where a step of that many would take longer than the budget, so the batches behind it wait little.
 */
const MAX_CHUNK = 2_000;
const MIN_CHUNK = 100;
/** Rows of topic_counts (a topic has one per replica) looked at per read of the topic list. */
const TOPIC_PAGE = 200;
/** About one batch statement: a step waits no longer for a batch's row lock, and gives way. */
const LOCK_TIMEOUT_MS = 20;
/** SQLSTATEs of a step that gave way to a batch: lock_not_available, deadlock_detected. */
const GAVE_WAY = new Set(['55P03', '40P01']);

/**
 * The next topics by name, with their retained events and the received_at of the first retained one; `more`:
 * the page was full, more topics may follow. The page is $2 rows of topic_counts in key order (one per
 * topic and replica; the last topic's rows may run on, so its sum is taken over all of them), not the
 * sums of every topic sorted and cut, which read the whole table for every page. A topic's first retained
 * row is asked for as the start of its (topic, seq) range, not as `topic = t.topic ORDER BY seq`: only the
 * (topic, seq) index serves that range in order, so the plan cannot depend on statistics. With
 * `topic = t.topic`, stale statistics (a topic believed common) made the planner walk the seq index and
 * filter on topic, through every other topic's rows (issue 23: 106 ms per 200 topics, with 50k topics).
 */
export const SWEEP_TOPICS = `
  WITH page AS (SELECT topic FROM topic_counts WHERE topic > $1 ORDER BY topic LIMIT $2)
  SELECT t.topic, t.events, f.received_at AS oldest, ${agoSql('0')} AS now, (SELECT count(*) FROM page) = $2 AS more
  FROM (SELECT topic, sum(events) AS events FROM topic_counts WHERE topic = ANY(ARRAY(SELECT topic FROM page)) GROUP BY topic) t
  LEFT JOIN LATERAL (SELECT received_at FROM events
                     WHERE (topic, seq) > (t.topic, 0) AND (topic, seq) < (t.topic, 9223372036854775807) AND doc IS NOT NULL
                     ORDER BY topic, seq LIMIT 1) f ON true
  ORDER BY t.topic`;

/**
 * Tombstones one chunk of a topic ($1): beyond the newest $3 events (NULL: no count limit) and received
 * before $2 (NULL: no age limit); $4 the chunk, $5 this replica. Victims a batch deleted meanwhile (a
 * stale key replaced) are gone anyway: only the rows this statement changed are counted.
 */
const PURGE_TOPIC = `
  WITH candidates AS (
    SELECT seq, received_at, octet_length(doc) AS bytes, row_number() OVER (ORDER BY seq) AS k
    FROM (SELECT seq, received_at, doc FROM events
          WHERE topic = $1 AND doc IS NOT NULL AND seq < ${SEQ_HORIZON} ORDER BY seq LIMIT $4) oldest
  ), prefix AS (
    SELECT greatest(
      CASE WHEN $3::bigint IS NULL THEN 0
           ELSE (SELECT coalesce(sum(events), 0) FROM topic_counts WHERE topic = $1) - $3::bigint END,
      CASE WHEN $2::text IS NULL THEN 0
           ELSE coalesce((SELECT min(k) - 1 FROM candidates WHERE received_at >= $2::text), (SELECT count(*) FROM candidates)) END
    ) AS k
  ), victims AS (
    SELECT seq, bytes FROM candidates WHERE k <= (SELECT k FROM prefix)
  ), purged AS (
    UPDATE events SET doc = NULL FROM victims WHERE events.seq = victims.seq AND events.doc IS NOT NULL
    RETURNING events.seq
  ), gone AS (
    SELECT count(*) AS events, coalesce(sum(victims.bytes), 0) AS bytes FROM purged JOIN victims USING (seq)
  ), counted AS (
    INSERT INTO topic_counts AS t (topic, replica, events, bytes, changed)
    SELECT $1, $5, -events, -bytes, ${SEQ_BASE} FROM gone WHERE events > 0
    ON CONFLICT (topic, replica, lane) DO UPDATE SET events = t.events + excluded.events, bytes = t.bytes + excluded.bytes,
                                               changed = excluded.changed
  ), horizon AS (
    INSERT INTO topic_purges (topic, purged_through) SELECT $1, max(seq) FROM victims HAVING count(*) > 0
    ON CONFLICT (topic) DO UPDATE SET purged_through = greatest(topic_purges.purged_through, excluded.purged_through)
  ), total AS (
    INSERT INTO purges (id, at, events, duration_ms, total) SELECT 1, ${agoSql('0')}, events, 0, events FROM gone WHERE events > 0
    ON CONFLICT (id) DO UPDATE SET total = purges.total + excluded.total
  )
  SELECT (SELECT events FROM gone) AS purged, (SELECT count(*) FROM victims) AS victims`;

/** Forgets one chunk of keys: tombstones received longer ago than the window ($1 ms); $2 the chunk, $3 this replica. */
const FORGET_KEYS = `
  WITH doomed AS (
    SELECT seq FROM events WHERE received_at < ${agoSql('$1::bigint')} AND doc IS NULL ORDER BY received_at LIMIT $2
  ), forgotten AS (
    DELETE FROM events e USING doomed WHERE e.seq = doomed.seq AND e.doc IS NULL RETURNING e.seq
  ), counted AS (
    INSERT INTO replica_counters AS c (replica, unique_processed, duplicate_dropped, keys_forgotten)
    SELECT $3, 0, 0, count(*) FROM forgotten HAVING count(*) > 0
    ON CONFLICT (replica, lane) DO UPDATE SET keys_forgotten = c.keys_forgotten + excluded.keys_forgotten
  )
  SELECT (SELECT count(*) FROM forgotten) AS forgotten, (SELECT count(*) FROM doomed) AS doomed`;

const LAST_PURGE = `UPDATE purges SET at = ${agoSql('0')}, events = $1, duration_ms = $2`;

/** Keys held (every row, tombstones too) and the last purge, whichever replica made it. */
const FIGURES = `
  SELECT (SELECT coalesce(sum(unique_processed - keys_forgotten), 0) FROM replica_counters) AS keys, p.*
  FROM (SELECT 1) one LEFT JOIN purges p ON true`;

const RETAINED = 'SELECT topic, sum(events) AS events FROM topic_counts WHERE topic = ANY($1) GROUP BY topic';

interface TopicRow {
  topic: string;
  events: string;
  oldest: string | null;
  now: string;
  more: boolean;
}

/** What one step did: rows changed, and whether its chunk was full (more of the same is due). */
interface Step {
  changed: number;
  full: boolean;
}

/** What a step's statement reports: rows it changed, and rows it took on (a full chunk means more are due). */
interface Chunk {
  changed: number;
  taken: number;
}

/**
 * The retention upkeep of one replica, on the writer's connection for transactions, never the batches'
 * (see PostgresEventStore). See the block comment above.
 */
export class PostgresPurger {
  /** The sweep's place in the topic list: the last topic whose purge is done for this sweep. */
  private cursor = '';
  /** Rows per statement, fitted to the budget by the steps so far. */
  private chunk = MIN_CHUNK;

  constructor(private readonly pool: pg.Pool, private readonly replica: string, private readonly policy: RetentionPolicy) {}

  async upkeep(budgetMs: number): Promise<UpkeepReport> {
    const started = performance.now();
    const spent = () => performance.now() - started >= budgetMs;
    const purgedFrom = new Set<string>();
    let purged = 0;
    let pending = false;
    if (purgesAnything(this.policy)) {
      ({ purged, pending } = await this.sweep(budgetMs, spent, purgedFrom));
    }
    const durationMs = performance.now() - started;
    if (purged > 0) await this.pool.query(LAST_PURGE, [purged, durationMs]);
    const [figures, retained] = await Promise.all([
      this.pool.query<{ keys: string; at: string | null; events: string; duration_ms: number; total: string }>(FIGURES),
      purgedFrom.size > 0 ? this.pool.query<{ topic: string; events: string }>(RETAINED, [[...purgedFrom]]) : undefined,
    ]);
    const row = figures.rows[0]!;
    const lastPurge: PurgeReport | undefined = row.at === null ? undefined
      : { at: row.at, events: Number(row.events), durationMs: row.duration_ms, total: Number(row.total) };
    return {
      pending,
      // The index is PostgreSQL's: nothing of it lives in this process.
      index: { keys: Number(row.keys), memoryBytes: 0, hotKeys: 0, segments: 0 },
      lastPurge,
      topicEvents: new Map((retained?.rows ?? []).map((r) => [r.topic, Number(r.events)])),
    };
  }

  /**
   * Goes on through the topics from the cursor until the budget is spent; at the end of the list, forgets
   * keys past the window and starts the next sweep over. Pending: work is left that is due now.
   */
  private async sweep(budgetMs: number, spent: () => boolean, purgedFrom: Set<string>): Promise<{ purged: number; pending: boolean }> {
    let purged = 0;
    for (;;) {
      const { rows } = await this.pool.query<TopicRow>(SWEEP_TOPICS, [this.cursor, TOPIC_PAGE]);
      for (const row of rows) {
        for (;;) {
          const step = await this.purgeTopic(row, budgetMs);
          if (step === undefined) return { purged, pending: false };
          if (step === 'gave-way') return { purged, pending: true };
          purged += step.changed;
          if (step.changed > 0) purgedFrom.add(row.topic);
          if (!step.full) break;
          if (spent()) return { purged, pending: true };
        }
        this.cursor = row.topic;
        // A slice that only looked at topics with nothing due leaves the rest of the sweep to the next
        // round of upkeep: on a store of many topics, looking is bounded to a slice per round.
        if (spent()) return { purged, pending: purged > 0 };
      }
      if (rows[0]?.more) continue;
      this.cursor = '';
      const forgot = await this.forgetKeys(budgetMs, spent);
      return { purged, pending: forgot === 'gave-way' || (forgot?.full ?? false) };
    }
  }

  /** One chunk of a topic, or nothing to do (changed 0); undefined: another replica is purging. */
  private purgeTopic(row: TopicRow, budgetMs: number): Promise<Step | 'gave-way' | undefined> {
    const limit = limitFor(this.policy, row.topic);
    const cutoff = limit?.maxAgeMs === undefined ? null : new Date(Date.parse(row.now) - limit.maxAgeMs).toISOString();
    const overCount = limit?.maxEvents !== undefined && Number(row.events) > limit.maxEvents;
    const overAge = cutoff !== null && row.oldest !== null && row.oldest < cutoff;
    if (!overCount && !overAge) return Promise.resolve({ changed: 0, full: false });
    return this.locked(budgetMs, async (client, chunk) => {
      const { rows: [result] } = await client.query<{ purged: string; victims: string }>(
        PURGE_TOPIC, [row.topic, cutoff, limit!.maxEvents ?? null, chunk, this.replica]);
      return { changed: Number(result!.purged), taken: Number(result!.victims) };
    });
  }

  /** Deletes tombstones past the window, chunk by chunk, until none is left or the budget is spent. */
  private async forgetKeys(budgetMs: number, spent: () => boolean): Promise<Step | 'gave-way' | undefined> {
    const window = this.policy.dedupWindowMs;
    if (window === undefined) return undefined;
    for (;;) {
      const step = await this.locked(budgetMs, async (client, chunk) => {
        const { rows: [result] } = await client.query<{ forgotten: string; doomed: string }>(FORGET_KEYS, [window, chunk, this.replica]);
        return { changed: Number(result!.forgotten), taken: Number(result!.doomed) };
      });
      if (step === undefined || step === 'gave-way' || !step.full || spent()) return step;
    }
  }

  /**
   * Runs `work` on a chunk of rows in a transaction holding PURGE_LOCK, and fits the next chunk to the
   * budget; undefined when another replica holds the lock, 'gave-way' when a row lock held by a batch made
   * it give up (it is rolled back and retried later).
   */
  private async locked(budgetMs: number, work: (client: pg.PoolClient, chunk: number) => Promise<Chunk>): Promise<Step | 'gave-way' | undefined> {
    const started = performance.now();
    const chunk = this.chunk;
    let done: Chunk | undefined;
    try {
      done = await inTransaction(this.pool, async (client) => {
        const { rows: [lock] } = await client.query<{ got: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS got', [PURGE_LOCK]);
        return lock!.got ? work(client, chunk) : undefined;
      }, `BEGIN; SET LOCAL lock_timeout = ${LOCK_TIMEOUT_MS}`);
    } catch (error) {
      if (GAVE_WAY.has((error as { code?: string }).code ?? '')) return 'gave-way';
      throw error;
    }
    if (!done) return undefined;
    const ms = performance.now() - started;
    const full = done.taken === chunk;
    if (ms > budgetMs) this.chunk = Math.max(MIN_CHUNK, Math.floor(chunk / 2));
    else if (full && ms < budgetMs / 2) this.chunk = Math.min(MAX_CHUNK, chunk * 2);
    return { changed: done.changed, full };
  }
}
