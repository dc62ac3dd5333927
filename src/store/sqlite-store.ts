import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { IncomingEvent } from '../event.js';
import type { ConsumerCommand, ConsumerOutcome } from './consumers.js';
import { SqliteConsumerWriter } from './sqlite-consumers.js';
import { migrate } from './sqlite-schema.js';
import { cyrb53Key, type KeyHash } from './key-hash.js';
import { KeyIndex } from './key-index.js';
import { StoreError, type BatchResult, type EventStore, type RingCheckpoint, type StoreCounters, type StoreSnapshot, type Upkeep } from './store.js';

/** SQLite `synchronous`: `normal` survives a process crash, `full` also a power loss (an fsync per commit). */
export type Synchronous = 'normal' | 'full';

export interface SqliteStoreOptions {
  synchronous: Synchronous;
  /** Cap on the database file (0: none); a commit that would pass it fails with SQLITE_FULL. */
  maxBytes: number;
  /** The dedup hash; replaceable so tests can force collisions. */
  keyHash?: KeyHash;
}

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
  private readonly keys = new KeyIndex();
  private readonly consumers: SqliteConsumerWriter;
  /** The seq the next stored event gets; advanced only when its transaction commits. */
  private nextSeq: number;

  constructor(private readonly path: string, { synchronous, maxBytes, keyHash = cyrb53Key }: SqliteStoreOptions) {
    this.keyHash = keyHash;
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.inode = statSync(path).ino;
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${synchronous}`);
    this.db.pragma(`cache_size = -${CACHE_KIB}`);
    migrate(this.db);
    if (maxBytes > 0) {
      const pageSize = this.db.pragma('page_size', { simple: true }) as number;
      this.db.pragma(`max_page_count = ${Math.max(1, Math.floor(maxBytes / pageSize))}`);
    }

    this.statements = {
      keyAt: this.db.prepare<[number], { topic: string; event_id: string }>('SELECT topic, event_id FROM events WHERE seq = ?'),
      claimCollidingKey: this.db.prepare<[string, string, number]>(
        'INSERT INTO colliding_keys (topic, event_id, seq) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
      ),
      insert: this.db.prepare<[number, number, string, string, string, string, string, string]>(
        `INSERT INTO events (seq, key_hash, topic, event_id, timestamp, source, payload, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      countTopic: this.db.prepare<[string, number]>(
        `INSERT INTO topics (topic, events) VALUES (?, ?)
         ON CONFLICT (topic) DO UPDATE SET events = events + excluded.events`,
      ),
      addCounters: this.db.prepare<[number, number]>(
        `UPDATE counters SET unique_processed = unique_processed + ?, duplicate_dropped = duplicate_dropped + ?`,
      ),
      saveCheckpoint: this.db.prepare<[string, number]>(
        `INSERT INTO ring_checkpoint (id, epoch, position) VALUES (1, ?, ?)
         ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, position = excluded.position`,
      ),
    };
    this.commitTransaction = this.db.transaction(this.insertBatch.bind(this));
    this.consumers = new SqliteConsumerWriter(this.db);

    const row = this.db.prepare('SELECT unique_processed, duplicate_dropped FROM counters').get() as {
      unique_processed: number;
      duplicate_dropped: number;
    };
    this.current = { uniqueProcessed: row.unique_processed, duplicateDropped: row.duplicate_dropped };
    this.nextSeq = (this.db.prepare('SELECT coalesce(max(seq), 0) FROM events').pluck().get() as number) + 1;
    // In seq order, so the first event stored with a hash owns it.
    for (const [hash, seq] of this.db.prepare('SELECT key_hash, seq FROM events ORDER BY seq').raw().iterate() as Iterable<[number, number]>) {
      this.keys.add(hash, seq);
    }
  }

  readonly shared = false;

  snapshot(): StoreSnapshot {
    const rows = this.db.prepare('SELECT topic, events FROM topics').raw().all() as [string, number][];
    return { counters: this.current, topicEvents: new Map(rows) };
  }

  /** This writer is the only one, and its commits report their own topics. */
  changes(): StoreSnapshot {
    return { counters: this.current, topicEvents: new Map() };
  }

  checkpoint(): RingCheckpoint | undefined {
    return this.db.prepare('SELECT epoch, position FROM ring_checkpoint').get() as RingCheckpoint | undefined;
  }

  commitBatch(events: readonly IncomingEvent[], checkpoint: RingCheckpoint): BatchResult {
    // SQLite keeps writing to a deleted file without complaint, and those commits would vanish at the
    // next start: refuse to acknowledge anything once the file is no longer where it was opened.
    if (statSync(this.path, { throwIfNoEntry: false })?.ino !== this.inode) {
      throw new StoreError(`the database file ${this.path} was removed or replaced while open; restore it and restart`, 'STORE_FILE_GONE');
    }
    const { isNew, topicEvents, nextSeq, claimed } = asStoreError(() => this.commitTransaction(events, checkpoint));
    const seqRange = nextSeq > this.nextSeq ? { first: this.nextSeq, last: nextSeq - 1 } : undefined;
    this.nextSeq = nextSeq;
    // Only now that the transaction is durable do its keys join the index.
    for (const [hash, seq] of claimed) this.keys.add(hash, seq);
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

  maintain(): Upkeep {
    return { pending: false, index: { keys: this.keys.size, memoryBytes: 0, hotKeys: this.keys.size, segments: 0 }, lastPurge: undefined, topicEvents: new Map() };
  }

  close(): void {
    this.db.close();
  }

  /** The body of the batch transaction; better-sqlite3 rolls it back whole if anything throws. */
  private insertBatch(events: readonly IncomingEvent[], checkpoint: RingCheckpoint) {
    const { insert, countTopic, addCounters, saveCheckpoint } = this.statements;
    const isNew = new Uint8Array(events.length);
    const topicEvents = new Map<string, number>();
    // Hashes first claimed in this batch; they reach the index only if the transaction commits.
    const claimed = new Map<number, number>();
    let seq = this.nextSeq;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      const hash = this.keyHash(e.topic, e.eventId);
      if (!this.isNewKey(e, hash, seq, claimed)) continue;
      insert.run(seq++, hash, e.topic, e.eventId, e.timestamp, e.source, e.payload, e.receivedAt);
      isNew[i] = 1;
      topicEvents.set(e.topic, (topicEvents.get(e.topic) ?? 0) + 1);
    }
    const unique = seq - this.nextSeq;
    for (const [topic, count] of topicEvents) countTopic.run(topic, count);
    addCounters.run(unique, events.length - unique);
    saveCheckpoint.run(checkpoint.epoch, checkpoint.position);
    return { isNew, topicEvents, nextSeq: seq, claimed };
  }

  /**
   * Whether `event` (hashing to `hash`) is stored by no earlier event, in the store or in this batch.
   * A new key is recorded for `seq`: in `claimed` when its hash is free, in colliding_keys when another
   * key owns the hash.
   */
  private isNewKey(event: IncomingEvent, hash: number, seq: number, claimed: Map<number, number>): boolean {
    const { keyAt, claimCollidingKey } = this.statements;
    const owner = claimed.get(hash) ?? this.keys.get(hash);
    if (owner === 0) {
      claimed.set(hash, seq);
      return true;
    }
    const stored = keyAt.get(owner)!;
    if (stored.topic === event.topic && stored.event_id === event.eventId) return false;
    return claimCollidingKey.run(event.topic, event.eventId, seq).changes === 1;
  }
}

/** Runs a transaction; SQLite's own failures (disk full, I/O) become StoreErrors, anything else is a bug and stays as is. */
function asStoreError<T>(transaction: () => T): T {
  try {
    return transaction();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (error instanceof Database.SqliteError && typeof code === 'string') throw new StoreError(error.message, code, { cause: error });
    throw error;
  }
}
