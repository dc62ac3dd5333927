import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import type { KeyIndex } from './key-index.js';
import { SegmentFileError, SegmentReader, SegmentWriter } from './segment-file.js';

/*
 * The sealed part of the dedup index: immutable segment files (segment-file.ts), each covering one
 * contiguous seq range, registered in `key_segments`. Sealing and merging run as generators that yield
 * every few milliseconds of work, so the consumer interleaves them with commits; their result becomes
 * visible in one SQLite transaction that registers the new file (and unregisters what it replaces), so a
 * kill -9 at any moment leaves either the old files or the new one registered, never a mix.
 *
 * Merging is size-tiered: runs of MERGE_FANIN adjacent segments of similar size become one, so a store
 * of N keys holds O(log N) segments and a lookup asks O(log N) filters.
 */

const MERGE_FANIN = 4;
/** Segments whose sizes are within this factor count as one tier. */
const TIER_FACTOR = 4;
/** Above this many segments, the smallest adjacent run is merged whatever the tiers. */
const MAX_SEGMENTS = 24;
/** Pairs handled between yields: a few milliseconds. */
const PAIRS_PER_SLICE = 16_384;
const SLOTS_PER_SLICE = 65_536;
/** Buckets of the counting sort: each is sorted in one slice (about 1,000 keys for a seal of 1M). */
const BUCKETS = 1024;

interface SegmentRow {
  id: number;
  first_seq: number;
  last_seq: number;
  keys: number;
  file: string;
}

export interface SealedSegmentsLoad {
  /** Segment files found damaged or missing and rebuilt from the rows of their range. */
  rebuilt: number;
  /** Rows read to rebuild them. */
  rowsRead: number;
}

export class SealedSegments {
  private segments: SegmentReader[] = [];
  private readonly ids = new Map<SegmentReader, number>();
  private nextId: number;
  private readonly statements;

  constructor(private readonly db: Database.Database, private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.statements = {
      list: db.prepare<[], SegmentRow>('SELECT id, first_seq, last_seq, keys, file FROM key_segments ORDER BY first_seq'),
      register: db.prepare<[number, number, number, number, string]>(
        'INSERT INTO key_segments (id, first_seq, last_seq, keys, file) VALUES (?, ?, ?, ?, ?)'),
      unregister: db.prepare<[number]>('DELETE FROM key_segments WHERE id = ?'),
      pairsInEvents: db.prepare<[number, number], [number, number]>(
        'SELECT key_hash, seq FROM events WHERE seq BETWEEN ? AND ?').raw(),
      pairsInPurged: db.prepare<[number, number], [number, number]>(
        'SELECT key_hash, seq FROM purged_keys WHERE seq BETWEEN ? AND ?').raw(),
    };
    this.nextId = 1;
  }

  /** Opens every registered segment, rebuilding any that is damaged; deletes files nothing registers. */
  load(): SealedSegmentsLoad {
    const rows = this.statements.list.all();
    const registered = new Set(rows.map((row) => row.file));
    for (const name of readdirSync(this.dir)) {
      if (!registered.has(name)) rmSync(join(this.dir, name), { force: true });
    }
    let rebuilt = 0;
    let rowsRead = 0;
    for (const row of rows) {
      this.nextId = Math.max(this.nextId, row.id + 1);
      let reader: SegmentReader;
      try {
        reader = SegmentReader.open(join(this.dir, row.file));
        if (reader.header.firstSeq !== row.first_seq || reader.header.lastSeq !== row.last_seq) {
          reader.close();
          throw new SegmentFileError(`${row.file}: covers another range than registered`);
        }
      } catch (error) {
        if (!(error instanceof SegmentFileError) && (error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        const pairs = this.pairsOfRange(row.first_seq, row.last_seq);
        rowsRead += pairs.length / 2;
        rebuilt++;
        reader = this.writeSorted(row.file, pairs, row.first_seq, row.last_seq);
      }
      this.add(reader, row.id);
    }
    return { rebuilt, rowsRead };
  }

  /** The highest seq the segments cover: keys above it are in the in-memory tables. */
  get sealedThrough(): number {
    return this.segments.at(-1)?.header.lastSeq ?? 0;
  }

  get keys(): number {
    return this.segments.reduce((sum, s) => sum + s.header.keys, 0);
  }

  get count(): number {
    return this.segments.length;
  }

  get memoryBytes(): number {
    return this.segments.reduce((sum, s) => sum + s.memoryBytes, 0);
  }

  /** The seqs stored with `hash` in any segment, newest segment first. */
  *seqsOf(hash: number): Generator<number> {
    for (let i = this.segments.length - 1; i >= 0; i--) yield* this.segments[i]!.seqsOf(hash);
  }

  /**
   * Seals the keys of `table` (the owners of (sealedThrough, through]) and `extra` (the other keys of that
   * range: colliding hashes) into a new segment, a slice at a time; `onRegister` runs inside the
   * registering transaction.
   */
  *seal(table: KeyIndex, extra: readonly (readonly [hash: number, seq: number])[], through: number, onRegister: () => void): Generator<void> {
    const first = this.sealedThrough + 1;
    const total = table.size + extra.length;
    const bucketOf = (hash: number) => Math.floor(hash / 2 ** 43);
    // Counting sort into buckets by the hash's top 10 bits, then each bucket sorted on its own: the only
    // work that grows with the segment is linear, and it comes in slices.
    const starts = new Uint32Array(BUCKETS + 1);
    for (let slot = 0; slot < table.slots; slot += SLOTS_PER_SLICE) {
      table.scan(slot, slot + SLOTS_PER_SLICE, (hash) => starts[bucketOf(hash) + 1]!++);
      yield;
    }
    for (const [hash] of extra) starts[bucketOf(hash) + 1]!++;
    for (let b = 0; b < BUCKETS; b++) starts[b + 1]! += starts[b]!;
    const hashes = new Float64Array(total);
    const seqs = new Float64Array(total);
    const fill = starts.slice(0, BUCKETS);
    const place = (hash: number, seq: number) => {
      const at = fill[bucketOf(hash)]!++;
      hashes[at] = hash;
      seqs[at] = seq;
    };
    for (let slot = 0; slot < table.slots; slot += SLOTS_PER_SLICE) {
      table.scan(slot, slot + SLOTS_PER_SLICE, place);
      yield;
    }
    for (const [hash, seq] of extra) place(hash, seq);
    yield* this.write(total, first, through, [], function* (writer) {
      for (let b = 0; b < BUCKETS; b++) {
        const order = Array.from({ length: starts[b + 1]! - starts[b]! }, (_, i) => starts[b]! + i);
        order.sort((x, y) => hashes[x]! - hashes[y]! || seqs[x]! - seqs[y]!);
        for (const i of order) writer.add(hashes[i]!, seqs[i]!);
        yield;
      }
    }, onRegister);
  }

  /** The adjacent segments to merge next, or undefined when the tiers are in shape. */
  mergeCandidates(): SegmentReader[] | undefined {
    const { segments } = this;
    let best: SegmentReader[] | undefined;
    for (let i = 0; i + MERGE_FANIN <= segments.length; i++) {
      const run = segments.slice(i, i + MERGE_FANIN);
      const sizes = run.map((s) => Math.max(1, s.header.keys));
      const similar = Math.max(...sizes) <= TIER_FACTOR * Math.min(...sizes);
      const total = sizes.reduce((a, b) => a + b, 0);
      const bestTotal = best?.reduce((a, s) => a + s.header.keys, 0) ?? Infinity;
      if ((similar || segments.length > MAX_SEGMENTS) && total < bestTotal) best = run;
    }
    return best;
  }

  /** Merges adjacent `inputs` into one segment, dropping keys below `floorSeq` (forgotten: their rows are gone). */
  *merge(inputs: SegmentReader[], floorSeq: number): Generator<void> {
    const keys = inputs.reduce((sum, s) => sum + s.header.keys, 0);
    yield* this.write(keys, inputs[0]!.header.firstSeq, inputs.at(-1)!.header.lastSeq, inputs, function* (writer) {
      const heads = inputs.map((segment) => ({ segment, pairs: segment.readPairs(0, PAIRS_PER_SLICE), at: 0, read: 0 }));
      for (let done = 0; ; done++) {
        let min: (typeof heads)[number] | undefined;
        for (const head of heads) {
          if (head.at === head.pairs.length) {
            head.read += head.pairs.length / 2;
            head.pairs = head.segment.readPairs(head.read, PAIRS_PER_SLICE);
            head.at = 0;
          }
          if (head.pairs.length === 0) continue;
          if (!min || head.pairs[head.at]! < min.pairs[min.at]!
            || (head.pairs[head.at] === min.pairs[min.at] && head.pairs[head.at + 1]! < min.pairs[min.at + 1]!)) min = head;
        }
        if (!min) break;
        const seq = min.pairs[min.at + 1]!;
        if (seq >= floorSeq) writer.add(min.pairs[min.at]!, seq);
        min.at += 2;
        if (done % PAIRS_PER_SLICE === PAIRS_PER_SLICE - 1) yield;
      }
    });
  }

  /** Drops the segments whose every key is below `floorSeq` (forgotten by DEDUP_WINDOW). */
  dropBelow(floorSeq: number): void {
    const gone = this.segments.filter((s) => s.header.lastSeq < floorSeq && s !== this.segments.at(-1));
    for (const segment of gone) this.replace([segment], undefined);
  }

  close(): void {
    for (const segment of this.segments) segment.close();
    this.segments = [];
  }

  /**
   * Writes a new segment of at most `maxKeys` keys covering [first, last] from the pairs `fill` adds, a
   * slice at a time, and registers it in place of `removed`. A failure leaves only the temporary file,
   * which the next start deletes.
   */
  private *write(maxKeys: number, first: number, last: number, removed: SegmentReader[],
    fill: (writer: SegmentWriter) => Generator<void>, onRegister?: () => void): Generator<void> {
    const id = this.nextId++;
    const file = `segment-${id}.keys`;
    const reader = yield* this.writeFile(file, maxKeys, first, last, fill);
    this.replace(removed, { reader, id, file }, onRegister);
  }

  /** Writes `file` from the pairs `fill` adds and opens it; a failure abandons it (only a temporary file was written). */
  private *writeFile(file: string, maxKeys: number, first: number, last: number,
    fill: (writer: SegmentWriter) => Generator<void>): Generator<void, SegmentReader> {
    const path = join(this.dir, file);
    const writer = new SegmentWriter(path, maxKeys);
    try {
      yield* fill(writer);
    } catch (error) {
      writer.abandon();
      throw error;
    }
    writer.finish(first, last);
    return SegmentReader.open(path);
  }

  /** Registers `added` in place of `removed` in one transaction, then lets the old files go. */
  private replace(removed: SegmentReader[], added: { reader: SegmentReader; id: number; file: string } | undefined,
    onRegister?: () => void): void {
    this.db.transaction(() => {
      for (const segment of removed) this.statements.unregister.run(this.ids.get(segment)!);
      if (added) {
        const { header } = added.reader;
        this.statements.register.run(added.id, header.firstSeq, header.lastSeq, header.keys, added.file);
      }
      onRegister?.();
    })();
    const at = removed.length > 0 ? this.segments.indexOf(removed[0]!) : this.segments.length;
    this.segments.splice(at, removed.length, ...(added ? [added.reader] : []));
    for (const segment of removed) {
      this.ids.delete(segment);
      segment.close();
      rmSync(segment.path, { force: true });
    }
    if (added) this.ids.set(added.reader, added.id);
  }

  private add(reader: SegmentReader, id: number): void {
    this.segments.push(reader);
    this.ids.set(reader, id);
  }

  /** Every (hash, seq) stored in [first, last], from the events and the purged keys: what a segment of that range holds. */
  private pairsOfRange(first: number, last: number): Float64Array {
    const pairs: number[] = [];
    for (const statement of [this.statements.pairsInEvents, this.statements.pairsInPurged]) {
      for (const [hash, seq] of statement.iterate(first, last)) pairs.push(hash, seq);
    }
    return Float64Array.from(pairs);
  }

  /** Rewrites a registered segment's file at once (start-up: nothing else runs yet) from its range's pairs. */
  private writeSorted(file: string, pairs: Float64Array, first: number, last: number): SegmentReader {
    const order = Array.from({ length: pairs.length / 2 }, (_, i) => i);
    order.sort((x, y) => pairs[2 * x]! - pairs[2 * y]! || pairs[2 * x + 1]! - pairs[2 * y + 1]!);
    const writing = this.writeFile(file, order.length, first, last, function* (writer) {
      for (const i of order) writer.add(pairs[2 * i]!, pairs[2 * i + 1]!);
    });
    let step = writing.next();
    while (!step.done) step = writing.next();
    return step.value;
  }
}
