import type Database from 'better-sqlite3';
import type { IncomingEvent } from '../../../event.js';
import type { DedupIndexFigures } from '../../store.js';
import type { KeyHash } from './key-hash.js';
import { KeyIndex } from './key-index.js';
import { SealedSegments } from './sealed-segments.js';

/*
 * The SQLite store's dedup index: which (topic, event_id) are stored, in memory of bounded size.
 *
 *   active  the keys stored since the last seal: hash → seq of the first event with that hash (KeyIndex)
 *   frozen  the previous active table while it is being sealed (read-only meanwhile)
 *   sealed  segment files of (hash, seq) pairs with a Bloom filter each (sealed-segments.ts)
 *
 * Hashes only point at candidates: a key is a duplicate only if a row of the same (topic, event_id) is
 * found at one of the seqs its hash points to — in `events` or, once its event was purged, in
 * `purged_keys` — and, with DEDUP_WINDOW, was received inside the window. A different key with a hash
 * already seen anywhere is recorded in `colliding_keys` (by its full text), so a stored key is never
 * called new and a new key never a duplicate, however hashes collide.
 *
 * Invariant, kept by every path and rebuilt identically at start-up: for every hash, the in-memory
 * tables hold the first row above the sealed range with that hash, and every other row above it that
 * is the newest row of its key is in colliding_keys. So start-up reads only the rows above the sealed
 * range (at most about DEDUP_HOT_KEYS of them) plus the segments' filters.
 */

/** The claims of one batch: they join the index only if its transaction commits. */
export interface BatchClaims {
  /** Hashes first seen in this batch → the seq that owns them. */
  owners: Map<number, number>;
  /** Hashes of keys this batch recorded in colliding_keys. */
  colliding: number[];
  /** Seqs of earlier copies of keys this batch stored again because DEDUP_WINDOW had forgotten them. */
  forgotten: number[];
}

interface KeyRow {
  topic: string;
  event_id: string;
  received_at: string;
}

export interface DedupIndexOptions {
  /** Directory of the segment files. */
  dir: string;
  /** Keys the active table takes before it is sealed. */
  hotKeys: number;
  keyHash: KeyHash;
  /** Keys received longer ago are forgotten; undefined: never. */
  windowMs: number | undefined;
}

export interface DedupIndexLoad {
  /** Rows read to rebuild the in-memory tables (those above the sealed range). */
  hotRowsRead: number;
  /** Segments whose file was damaged or missing and was rebuilt, and the rows read for it. */
  segmentsRebuilt: number;
  segmentRowsRead: number;
  ms: number;
}

const CLEAR_SLICE = 1 << 18;

/** Slots for `keys` keys at most half full, as a power of two. */
const capacityFor = (keys: number) => 2 ** Math.ceil(Math.log2(Math.max(16, keys * 2)));

export class DedupIndex {
  private active: KeyIndex;
  private frozen: KeyIndex | undefined;
  /** The newest seq the frozen table covers: the end of the segment its seal writes. */
  private frozenThrough = 0;
  /** The last sealed table, cleared: the next active one (no 32 MB allocation in the middle of a batch stream). */
  private spare: KeyIndex | undefined;
  private readonly sealed: SealedSegments;
  /** The hashes of colliding_keys' rows: which hashes have more than one key above the sealed range. */
  private collidingHashes = new Set<number>();
  private readonly statements;
  /** received_at below this is outside DEDUP_WINDOW (set per batch); '' when there is no window. */
  private windowCutoff = '';
  /** A seal in progress; it goes before a merge, so the in-memory tables never wait behind a long merge. */
  private sealing: Generator<void> | undefined;
  /** A merge (or drop) in progress; its inputs are immutable, so seals may interleave with it. */
  private merging: Generator<void> | undefined;
  readonly loaded: DedupIndexLoad;

  constructor(db: Database.Database, private readonly options: DedupIndexOptions) {
    const started = performance.now();
    this.statements = {
      eventKey: db.prepare<[number], KeyRow>('SELECT topic, event_id, received_at FROM events WHERE seq = ?'),
      purgedKey: db.prepare<[number], KeyRow>('SELECT topic, event_id, received_at FROM purged_keys WHERE seq = ?'),
      collidingSeq: db.prepare<[string, string], number>('SELECT seq FROM colliding_keys WHERE topic = ? AND event_id = ?').pluck(),
      recordColliding: db.prepare<[string, string, number]>(
        `INSERT INTO colliding_keys (topic, event_id, seq) VALUES (?, ?, ?)
         ON CONFLICT (topic, event_id) DO UPDATE SET seq = excluded.seq`),
      collidingKeys: db.prepare<[], [string, string, number]>('SELECT topic, event_id, seq FROM colliding_keys').raw(),
      forgetSealedColliding: db.prepare<[number]>('DELETE FROM colliding_keys WHERE seq <= ?'),
      hotEvents: db.prepare<[number], [number, number]>('SELECT key_hash, seq FROM events WHERE seq > ? ORDER BY seq').raw(),
      hotPurged: db.prepare<[number], [number, number]>('SELECT key_hash, seq FROM purged_keys WHERE seq > ? ORDER BY seq').raw(),
      countAbove: db.prepare<[number, number], number>(
        'SELECT (SELECT count(*) FROM events WHERE seq > ?) + (SELECT count(*) FROM purged_keys WHERE seq > ?)').pluck(),
      floorSeq: db.prepare<[], number | null>(
        'SELECT min(coalesce((SELECT min(seq) FROM events), 9e15), coalesce((SELECT min(seq) FROM purged_keys), 9e15))').pluck(),
    };
    this.sealed = new SealedSegments(db, options.dir);
    const { rebuilt, rowsRead } = this.sealed.load();
    const through = this.sealed.sealedThrough;
    this.active = new KeyIndex(capacityFor(Math.max(options.hotKeys, this.statements.countAbove.get(through, through)!)));
    const hotRowsRead = this.loadHot(through);
    this.loadColliding();
    this.loaded = { hotRowsRead, segmentsRebuilt: rebuilt, segmentRowsRead: rowsRead, ms: performance.now() - started };
  }

  /** Sets the window's cutoff for the next batch. */
  beginBatch(nowMs: number): void {
    if (this.options.windowMs !== undefined) this.windowCutoff = new Date(nowMs - this.options.windowMs).toISOString();
  }

  /**
   * Whether `event` (hashing to `hash`) is stored by no earlier event, in the store or in this batch; a
   * new one is recorded for `seq` (in `claims`, or in colliding_keys). Runs inside the batch transaction.
   */
  isNew(event: IncomingEvent, hash: number, seq: number, claims: BatchClaims): boolean {
    // Forgotten copies met on the way count only if the event turns out new.
    const mark = claims.forgotten.length;
    const found = this.lookUp(event, hash, claims);
    if (found === 'stored') {
      claims.forgotten.length = mark;
      return false;
    }
    if (found === 'hash seen') {
      this.statements.recordColliding.run(event.topic, event.eventId, seq);
      claims.colliding.push(hash);
    } else {
      claims.owners.set(hash, seq);
    }
    return true;
  }

  /** Where `event`'s key stands: stored (and remembered), not stored but its hash is, or neither. */
  private lookUp(event: IncomingEvent, hash: number, claims: BatchClaims): 'stored' | 'hash seen' | 'unseen' {
    const owner = claims.owners.get(hash) ?? (this.active.get(hash) || (this.frozen?.get(hash) ?? 0));
    let seen = owner !== 0 || this.collidingHashes.has(hash) || claims.colliding.includes(hash);
    if (owner !== 0 && this.holds(owner, event, claims.forgotten)) return 'stored';
    if (seen) {
      const colliding = this.statements.collidingSeq.get(event.topic, event.eventId);
      if (colliding !== undefined && this.holds(colliding, event, claims.forgotten)) return 'stored';
    }
    for (const sealedSeq of this.sealed.seqsOf(hash)) {
      seen = true;
      if (this.holds(sealedSeq, event, claims.forgotten)) return 'stored';
    }
    return seen ? 'hash seen' : 'unseen';
  }

  /** The batch committed: its claims join the in-memory tables. */
  committed(claims: BatchClaims): void {
    for (const [hash, seq] of claims.owners) this.active.add(hash, seq);
    for (const hash of claims.colliding) this.collidingHashes.add(hash);
  }

  /** Whether sealing or merging has work to do. */
  get pending(): boolean {
    return this.sealing !== undefined || this.merging !== undefined || this.active.size >= this.options.hotKeys
      || this.sealed.mergeCandidates() !== undefined;
  }

  /**
   * Does upkeep until `deadline` (performance.now()): seals a full active table, merges segments, drops
   * forgotten ones. `lastSeq` is the newest stored seq (what a seal started now covers).
   */
  work(deadline: number, lastSeq: number): void {
    while (performance.now() < deadline) {
      if (!this.sealing && this.active.size >= this.options.hotKeys) this.sealing = this.sealJob(lastSeq);
      if (this.sealing) {
        if (this.sealing.next().done) this.sealing = undefined;
        continue;
      }
      this.merging ??= this.mergeJob();
      if (!this.merging) return;
      if (this.merging.next().done) this.merging = undefined;
    }
  }

  /** Seals everything in memory at once (a clean shutdown), so the next start reads no rows. */
  sealAll(lastSeq: number): void {
    if (!this.sealing && this.active.size > 0) this.sealing = this.sealJob(lastSeq);
    while (this.sealing && !this.sealing.next().done);
    this.sealing = undefined;
    if (this.active.size > 0) this.sealAll(lastSeq);
  }

  figures(): DedupIndexFigures {
    const hotKeys = this.active.size + (this.frozen?.size ?? 0);
    return {
      keys: hotKeys + this.sealed.keys,
      memoryBytes: this.active.memoryBytes + (this.frozen?.memoryBytes ?? 0) + (this.spare?.memoryBytes ?? 0) + this.sealed.memoryBytes,
      hotKeys,
      segments: this.sealed.count,
    };
  }

  close(): void {
    this.sealed.close();
  }

  private mergeJob(): Generator<void> | undefined {
    const floor = this.options.windowMs === undefined ? 0 : this.statements.floorSeq.get() ?? 0;
    if (floor > 0) this.sealed.dropBelow(floor);
    const inputs = this.sealed.mergeCandidates();
    return inputs && this.sealed.merge(inputs, floor);
  }

  /** Freezes the active table (a fresh one takes new keys) and seals it with the colliding keys of its range. */
  private *sealJob(lastSeq: number): Generator<void> {
    if (!this.frozen) {
      this.frozen = this.active;
      this.active = this.spare ?? new KeyIndex(capacityFor(this.options.hotKeys));
      this.spare = undefined;
      this.frozenThrough = lastSeq;
    }
    const through = this.frozenThrough;
    const from = this.sealed.sealedThrough;
    const extra: [number, number][] = [];
    for (const [topic, eventId, seq] of this.statements.collidingKeys.iterate()) {
      const hash = this.options.keyHash(topic, eventId);
      // After a restart a colliding key may also be the table's owner of its hash: one pair is enough.
      if (seq > from && seq <= through && this.frozen.get(hash) !== seq) extra.push([hash, seq]);
    }
    yield* this.sealed.seal(this.frozen, extra, through, () => this.statements.forgetSealedColliding.run(through));
    const sealed = this.frozen;
    this.frozen = undefined;
    this.loadColliding();
    for (let slot = 0; slot < sealed.slots; slot += CLEAR_SLICE) {
      yield;
      sealed.clear(slot, slot + CLEAR_SLICE);
    }
    this.spare = sealed;
  }

  /** Rebuilds the active table from the rows above the sealed range, in seq order: the first row of a hash owns it. */
  private loadHot(through: number): number {
    let rows = 0;
    const events = this.statements.hotEvents.iterate(through)[Symbol.iterator]();
    const purged = this.statements.hotPurged.iterate(through)[Symbol.iterator]();
    let e = events.next();
    let p = purged.next();
    while (!e.done || !p.done) {
      const takeEvent = p.done || (!e.done && e.value[1] < p.value[1]);
      const [hash, seq] = takeEvent ? e.value! : p.value!;
      if (takeEvent) e = events.next();
      else p = purged.next();
      if (this.active.get(hash) === 0) this.active.add(hash, seq);
      rows++;
    }
    return rows;
  }

  private loadColliding(): void {
    this.collidingHashes = new Set();
    for (const [topic, eventId] of this.statements.collidingKeys.iterate()) this.collidingHashes.add(this.options.keyHash(topic, eventId));
  }

  /**
   * Whether the row stored at `seq` is `event`'s key and still remembered (inside DEDUP_WINDOW); a copy of
   * the key the window has forgotten goes to `forgotten`.
   */
  private holds(seq: number, event: IncomingEvent, forgotten: number[]): boolean {
    const row = this.statements.eventKey.get(seq) ?? this.statements.purgedKey.get(seq);
    if (row === undefined || row.topic !== event.topic || row.event_id !== event.eventId) return false;
    if (row.received_at >= this.windowCutoff) return true;
    forgotten.push(seq);
    return false;
  }
}
