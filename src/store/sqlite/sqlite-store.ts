import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { IncomingEvent } from '../../event.js';
import type { ConsumerCommand, ConsumerOutcome } from '../consumers.js';
import { SqliteConsumerWriter } from './sqlite-consumers.js';
import { eventBytes, migrate } from './sqlite-schema.js';
import { purgesAnything, type RetentionPolicy } from '../../retention.js';
import { DedupIndex, type BatchClaims, type SegmentRebuilt } from './dedup/dedup-index.js';
import { cyrb53Key, type KeyHash } from './dedup/key-hash.js';
import { SqliteRetention } from './sqlite-retention.js';
import { StoreError, type BatchResult, type EventStore, type RingCheckpoint, type StoreCounters, type StoreSnapshot, type UpkeepReport } from '../store.js';

/** SQLite `synchronous`: `normal` survives a process crash, `full` also a power loss (an fsync per commit). */
export type Synchronous = 'normal' | 'full';

export interface SqliteStoreOptions {
  synchronous: Synchronous;
  /** Cap on the database file (0: none); a commit that would pass it fails with SQLITE_FULL. */
  maxBytes: number;
  /** The dedup hash; replaceable so tests can force collisions. */
  keyHash?: KeyHash;
  /** Keys the dedup index holds in memory before sealing them (DEDUP_HOT_KEYS). */
  hotKeys?: number;
  /** Told of every dedup segment found damaged while open and rebuilt from the rows. */
  onSegmentRebuilt?: (rebuilt: SegmentRebuilt) => void;
  retention?: RetentionPolicy;
}

/** Most WAL the writer lets stand before it asks for a checkpoint between batches (and the size it truncates to). */
const WAL_LIMIT_BYTES = 64 * 1024 * 1024;
/** How long that checkpoint may wait for readers of older snapshots (a busy one is tried again at the next upkeep). */
const WAL_RESTART_WAIT_MS = 20;
/** better-sqlite3's default: how long a statement of the writer waits for a lock. */
const WRITER_BUSY_TIMEOUT_MS = 5_000;

/** Page cache of the writer: duplicates are confirmed by reading the stored event, often a recent page. */
const CACHE_KIB = 64 * 1024;

/**
 * The embedded store: one better-sqlite3 connection in WAL mode, so `/events` readers run beside this
 * writer. Every batch is one transaction (group commit) with prepared statements.
 */
export class SqliteEventStore implements EventStore {
  private readonly db: Database.Database;
  private readonly statements;
  private readonly commitTransaction;
  private current: StoreCounters;
  private readonly inode: number;
  private readonly keyHash: KeyHash;
  private readonly dedup: DedupIndex;
  private readonly retention: SqliteRetention | undefined;
  private readonly consumers: SqliteConsumerWriter;
  /** The seq the next stored event gets; advanced only when its transaction commits. */
  private nextSeq: number;

  constructor(
    private readonly path: string,
    { synchronous, maxBytes, keyHash = cyrb53Key, hotKeys = 1_000_000, retention = { rules: [], dedupWindowMs: undefined }, onSegmentRebuilt }: SqliteStoreOptions,
  ) {
    this.keyHash = keyHash;
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.inode = statSync(path).ino;
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${synchronous}`);
    this.db.pragma(`cache_size = -${CACHE_KIB}`);
    this.db.pragma(`journal_size_limit = ${WAL_LIMIT_BYTES}`);
    migrate(this.db);
    if (maxBytes > 0) {
      const pageSize = this.db.pragma('page_size', { simple: true }) as number;
      this.db.pragma(`max_page_count = ${Math.max(1, Math.floor(maxBytes / pageSize))}`);
    }

    this.statements = {
      insert: this.db.prepare<[number, number, string, string, string, string, string, string]>(
        `INSERT INTO events (seq, key_hash, topic, event_id, timestamp, source, payload, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      countTopic: this.db.prepare<[string, number, number, number]>(
        `INSERT INTO topics (topic, events, bytes, last_seq) VALUES (?, ?, ?, ?)
         ON CONFLICT (topic) DO UPDATE SET events = events + excluded.events, bytes = bytes + excluded.bytes, last_seq = excluded.last_seq`,
      ),
      // The counters and the ring checkpoint share one row: a commit writes one page for both.
      recordCommit: this.db.prepare<[number, number, string, number]>(
        `UPDATE counters SET unique_processed = unique_processed + ?, duplicate_dropped = duplicate_dropped + ?,
                             ring_epoch = ?, ring_position = ?`,
      ),
    };
    this.commitTransaction = this.db.transaction(this.insertBatch.bind(this));
    this.consumers = new SqliteConsumerWriter(this.db, () => this.nextSeq - 1);

    const row = this.db.prepare('SELECT unique_processed, duplicate_dropped FROM counters').get() as {
      unique_processed: number;
      duplicate_dropped: number;
    };
    this.current = { uniqueProcessed: row.unique_processed, duplicateDropped: row.duplicate_dropped };
    // Purges may have emptied the events table; a topic's last_seq and the purged keys remember the top.
    this.nextSeq = (this.db.prepare(`SELECT max(coalesce((SELECT max(seq) FROM events), 0), coalesce((SELECT max(last_seq) FROM topics), 0),
                                                coalesce((SELECT max(seq) FROM purged_keys), 0))`).pluck().get() as number) + 1;
    this.dedup = new DedupIndex(this.db, { dir: `${path}.keys`, hotKeys, keyHash, windowMs: retention.dedupWindowMs, onRebuilt: onSegmentRebuilt });
    this.retention = purgesAnything(retention) ? new SqliteRetention(this.db, retention) : undefined;
  }

  /** What opening the dedup index read (the rows above its sealed range, any damaged segment it rebuilt) and holds. */
  get indexLoad() {
    return { ...this.dedup.loaded, ...this.dedup.figures() };
  }

  readonly shared = false;
  /** better-sqlite3 commits synchronously: one batch at a time, so each checkpoint is its batch's end. */
  readonly commitsInFlight = 1;
  readonly lanesInUse = 1;

  snapshot(): StoreSnapshot {
    const rows = this.db.prepare('SELECT topic, events FROM topics').raw().all() as [string, number][];
    return { counters: this.current, topicEvents: new Map(rows) };
  }

  /** This writer is the only one, and its commits report their own topics. */
  changes(): StoreSnapshot {
    return { counters: this.current, topicEvents: new Map() };
  }

  checkpoint(): RingCheckpoint | undefined {
    return this.db.prepare('SELECT ring_epoch AS epoch, ring_position AS position FROM counters WHERE ring_epoch IS NOT NULL')
      .get() as RingCheckpoint | undefined;
  }

  commitBatch(events: readonly IncomingEvent[], checkpoint: RingCheckpoint): BatchResult {
    // SQLite keeps writing to a deleted file without complaint, and those commits would vanish at the
    // next start: refuse to acknowledge anything once the file is no longer where it was opened.
    if (statSync(this.path, { throwIfNoEntry: false })?.ino !== this.inode) {
      throw new StoreError(`the database file ${this.path} was removed or replaced while open; restore it and restart`, 'STORE_FILE_GONE');
    }
    this.dedup.beginBatch(Date.now());
    const { isNew, topicEvents, nextSeq, claims } = asStoreError(() => this.commitTransaction(events, checkpoint));
    const seqRange = nextSeq > this.nextSeq ? { first: this.nextSeq, last: nextSeq - 1 } : undefined;
    this.nextSeq = nextSeq;
    // Only now that the transaction is durable do its keys join the index.
    this.dedup.committed(claims);
    let unique = 0;
    for (const flag of isNew) unique += flag;
    this.current = {
      uniqueProcessed: this.current.uniqueProcessed + unique,
      duplicateDropped: this.current.duplicateDropped + events.length - unique,
    };
    return { isNew, counters: this.current, topicEvents, seqRange };
  }

  applyConsumerCommand(command: ConsumerCommand): ConsumerOutcome {
    return asStoreError(() => this.consumers.apply(command));
  }

  /** Seals and merges the dedup index, purges by retention, and keeps the WAL in bounds, until the budget is spent. */
  upkeep(budgetMs: number): UpkeepReport {
    const deadline = performance.now() + budgetMs;
    asStoreError(() => this.dedup.work(deadline, this.nextSeq - 1));
    const purge = this.retention && asStoreError(() => this.retention!.step(deadline, Date.now()));
    this.boundWal();
    return {
      pending: this.dedup.pending || purge?.pending === true,
      index: this.dedup.figures(),
      lastPurge: this.retention?.lastPurge,
      topicEvents: purge?.topicEvents ?? new Map(),
    };
  }

  /**
   * The automatic checkpoint copies the WAL back but can restart it only when no reader holds an older
   * snapshot, which back-to-back /events reads may never allow: the WAL then grows without bound. Past
   * WAL_LIMIT_BYTES a RESTART checkpoint waits (briefly) for the readers of older snapshots to finish, so
   * the next commit writes from the WAL's start again (and journal_size_limit truncates the file).
   */
  private boundWal(): void {
    if ((statSync(`${this.path}-wal`, { throwIfNoEntry: false })?.size ?? 0) <= WAL_LIMIT_BYTES) return;
    this.db.pragma(`busy_timeout = ${WAL_RESTART_WAIT_MS}`);
    try {
      this.db.pragma('wal_checkpoint(RESTART)');
    } finally {
      this.db.pragma(`busy_timeout = ${WRITER_BUSY_TIMEOUT_MS}`);
    }
  }

  /**
   * Seals the in-memory keys first, so that the next start reads no rows. A seal the disk refuses (full,
   * gone) only costs that: the next start rebuilds the same keys from the rows.
   */
  close(): void {
    try {
      this.dedup.sealAll(this.nextSeq - 1);
    } catch (error) {
      if (typeof (error as { code?: unknown }).code !== 'string') throw error;
    } finally {
      this.dedup.close();
      this.db.close();
    }
  }

  /** The body of the batch transaction; better-sqlite3 rolls it back whole if anything throws. */
  private insertBatch(events: readonly IncomingEvent[], checkpoint: RingCheckpoint) {
    const { insert, countTopic, recordCommit } = this.statements;
    const isNew = new Uint8Array(events.length);
    const topics = new Map<string, { events: number; bytes: number; last: number }>();
    // Keys first stored in this batch; they reach the in-memory index only if the transaction commits.
    const claims: BatchClaims = { owners: new Map(), colliding: [], forgotten: [] };
    let seq = this.nextSeq;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      const hash = this.keyHash(e.topic, e.eventId);
      if (!this.dedup.isNew(e, hash, seq, claims)) continue;
      insert.run(seq, hash, e.topic, e.eventId, e.timestamp, e.source, e.payload, e.receivedAt);
      isNew[i] = 1;
      const topic = topics.get(e.topic);
      if (topic) {
        topic.events++;
        topic.bytes += eventBytes(e);
        topic.last = seq;
      } else {
        topics.set(e.topic, { events: 1, bytes: eventBytes(e), last: seq });
      }
      seq++;
    }
    const unique = seq - this.nextSeq;
    const topicEvents = new Map<string, number>();
    for (const [name, topic] of topics) {
      countTopic.run(name, topic.events, topic.bytes, topic.last);
      topicEvents.set(name, topic.events);
    }
    // A key stored again after DEDUP_WINDOW forgot it: its old copy goes now, as a purge, so that one copy is listed.
    for (const topic of this.retention?.purgeForgotten(claims.forgotten) ?? []) topicEvents.set(topic, (topicEvents.get(topic) ?? 0) - 1);
    recordCommit.run(unique, events.length - unique, checkpoint.epoch, checkpoint.position);
    return { isNew, topicEvents, nextSeq: seq, claims };
  }
}

/** Runs a transaction; SQLite's and the file system's failures (disk full, I/O) become StoreErrors, anything else is a bug and stays as is. */
function asStoreError<T>(transaction: () => T): T {
  try {
    return transaction();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    // The dedup index's segment files fail like the database does (ENOSPC, EIO): the upkeep is retried later.
    const fromDisk = error instanceof Database.SqliteError || (error instanceof Error && 'syscall' in error);
    if (fromDisk && typeof code === 'string') throw new StoreError((error as Error).message, code, { cause: error });
    throw error;
  }
}
