import { closeSync, fdatasyncSync, fsyncSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { BloomFilter } from './bloom.js';

/*
 * A sealed segment of the dedup index: the (hash, seq) pairs of the keys stored in one seq range, written
 * once, sorted by (hash, seq), never changed. Layout (little-endian):
 *
 *   header  64 B   magic, version, key count, first/last seq, section sizes, CRC-32 of filter+fences and of the header
 *   filter         a blocked Bloom filter of the hashes (bloom.ts), ~1.25 B a key, held in memory
 *   fences         every FENCE_EVERY-th hash, held in memory, so a lookup reads one 4 KiB run of pairs
 *   pairs   16 B   hash (float64), seq (float64) per key
 *
 * A file is written to a temporary name, fsynced and renamed, and only then registered in the database;
 * a file that is not registered is a leftover of a crash and is deleted. One whose header, size or
 * checksum is wrong is rebuilt from the rows of its range (sealed-segments.ts): never trusted.
 */

const MAGIC = 0x5359454b_41535350n; // "PSSAKEYS"
const VERSION = 1;
const HEADER_BYTES = 64;
const PAIR_BYTES = 16;
/** Pairs per fence: 256 × 16 B = one 4 KiB read per lookup. */
const FENCE_EVERY = 256;
const NONE: readonly number[] = [];
/** Written bytes flushed to disk as the file grows, so that no single fsync holds the consumer for long. */
const SYNC_EVERY_BYTES = 4 * 1024 * 1024;

export interface SegmentHeader {
  keys: number;
  firstSeq: number;
  lastSeq: number;
}

export class SegmentFileError extends Error {
  override name = 'SegmentFileError';
}

/** Writes a segment's sorted pairs as they come; `finish` makes it durable under its final name. */
export class SegmentWriter {
  private readonly fd: number;
  private readonly filter: BloomFilter;
  private readonly fences: Float64Array;
  private readonly pairsAt: number;
  private written = 0;
  private unsynced = 0;
  private readonly buffer: Float64Array;
  private buffered = 0;
  private lastHash = -1;
  private lastSeq = -1;

  /** `maxKeys` bounds what will be added (the sections are sized for it). */
  constructor(private readonly path: string, maxKeys: number) {
    this.filter = BloomFilter.forKeys(maxKeys);
    this.fences = new Float64Array(Math.ceil(maxKeys / FENCE_EVERY));
    this.pairsAt = HEADER_BYTES + this.filter.bytes.byteLength + this.fences.byteLength;
    this.buffer = new Float64Array(2 * 4096);
    this.fd = openSync(`${path}.tmp`, 'w');
  }

  get keys(): number {
    return this.written + this.buffered / 2;
  }

  /** Pairs must come in ascending (hash, seq) order. */
  add(hash: number, seq: number): void {
    if (hash < this.lastHash || (hash === this.lastHash && seq <= this.lastSeq)) {
      throw new SegmentFileError(`pairs out of order: (${hash}, ${seq}) after (${this.lastHash}, ${this.lastSeq})`);
    }
    this.lastHash = hash;
    this.lastSeq = seq;
    const index = this.keys;
    if (index % FENCE_EVERY === 0) this.fences[index / FENCE_EVERY] = hash;
    this.filter.add(hash);
    this.buffer[this.buffered++] = hash;
    this.buffer[this.buffered++] = seq;
    if (this.buffered === this.buffer.length) this.flush();
  }

  /** Writes the header and sections, fsyncs, and renames the file into place. */
  finish(firstSeq: number, lastSeq: number): SegmentHeader {
    this.flush();
    const fenceCount = Math.ceil(this.written / FENCE_EVERY);
    const fences = new Uint8Array(this.fences.buffer, 0, fenceCount * 8);
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeBigUInt64LE(MAGIC, 0);
    header.writeUInt32LE(VERSION, 8);
    header.writeDoubleLE(this.written, 12);
    header.writeDoubleLE(firstSeq, 20);
    header.writeDoubleLE(lastSeq, 28);
    header.writeUInt32LE(this.filter.bytes.byteLength, 36);
    header.writeUInt32LE(this.fences.byteLength, 40);
    header.writeUInt32LE(crc32(fences, crc32(this.filter.bytes)), 44);
    header.writeUInt32LE(crc32(header.subarray(0, 60)), 60);
    writeSync(this.fd, header, 0, HEADER_BYTES, 0);
    writeSync(this.fd, this.filter.bytes, 0, this.filter.bytes.byteLength, HEADER_BYTES);
    writeSync(this.fd, fences, 0, fences.byteLength, HEADER_BYTES + this.filter.bytes.byteLength);
    fsyncSync(this.fd);
    closeSync(this.fd);
    renameSync(`${this.path}.tmp`, this.path);
    return { keys: this.written, firstSeq, lastSeq };
  }

  /** Gives up: the temporary file stays behind and is deleted at the next start. */
  abandon(): void {
    closeSync(this.fd);
  }

  private flush(): void {
    if (this.buffered === 0) return;
    const bytes = new Uint8Array(this.buffer.buffer, 0, this.buffered * 8);
    writeSync(this.fd, bytes, 0, bytes.byteLength, this.pairsAt + this.written * PAIR_BYTES);
    this.written += this.buffered / 2;
    this.buffered = 0;
    this.unsynced += bytes.byteLength;
    if (this.unsynced >= SYNC_EVERY_BYTES) {
      fdatasyncSync(this.fd);
      this.unsynced = 0;
    }
  }
}

/** An open sealed segment: its filter and fences in memory, its pairs read on demand. */
export class SegmentReader {
  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly header: SegmentHeader,
    readonly filter: BloomFilter,
    private readonly fences: Float64Array,
    private readonly pairsAt: number,
  ) {}

  /** Opens and checks a segment file; throws SegmentFileError if it is not a whole, intact segment. */
  static open(path: string): SegmentReader {
    const fd = openSync(path, 'r');
    try {
      const header = Buffer.alloc(HEADER_BYTES);
      if (readSync(fd, header, 0, HEADER_BYTES, 0) !== HEADER_BYTES) throw new SegmentFileError(`${path}: truncated header`);
      if (header.readBigUInt64LE(0) !== MAGIC || header.readUInt32LE(8) !== VERSION) throw new SegmentFileError(`${path}: not a key segment`);
      if (header.readUInt32LE(60) !== crc32(header.subarray(0, 60))) throw new SegmentFileError(`${path}: header checksum mismatch`);
      const keys = header.readDoubleLE(12);
      const filterBytes = header.readUInt32LE(36);
      const fenceBytes = header.readUInt32LE(40);
      const pairsAt = HEADER_BYTES + filterBytes + fenceBytes;
      const sections = Buffer.alloc(filterBytes + fenceBytes);
      if (readSync(fd, sections, 0, sections.byteLength, HEADER_BYTES) !== sections.byteLength) {
        throw new SegmentFileError(`${path}: truncated filter`);
      }
      const fenceCount = Math.ceil(keys / FENCE_EVERY);
      const usedFences = sections.subarray(filterBytes, filterBytes + fenceCount * 8);
      if (crc32(usedFences, crc32(sections.subarray(0, filterBytes))) !== header.readUInt32LE(44)) {
        throw new SegmentFileError(`${path}: filter checksum mismatch`);
      }
      const last = Buffer.alloc(PAIR_BYTES);
      if (keys > 0 && readSync(fd, last, 0, PAIR_BYTES, pairsAt + (keys - 1) * PAIR_BYTES) !== PAIR_BYTES) {
        throw new SegmentFileError(`${path}: truncated pairs`);
      }
      const copy = new Uint8Array(sections.byteLength);
      copy.set(sections);
      return new SegmentReader(path, fd,
        { keys, firstSeq: header.readDoubleLE(20), lastSeq: header.readDoubleLE(28) },
        new BloomFilter(copy.subarray(0, filterBytes)),
        new Float64Array(copy.buffer, filterBytes, fenceCount), pairsAt);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  /** Bytes of memory it holds. */
  get memoryBytes(): number {
    return this.filter.bytes.byteLength + this.fences.byteLength;
  }

  /** The seqs stored with `hash`, ascending; none (usually without touching the disk, or allocating) when absent. */
  seqsOf(hash: number): readonly number[] {
    if (!this.filter.mayContain(hash)) return NONE;
    // The last fence at or below the hash starts the run; equal hashes may spill into the runs before it.
    let lo = 0;
    let hi = this.fences.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.fences[mid]! < hash) lo = mid;
      else hi = mid - 1;
    }
    const seqs: number[] = [];
    for (let fence = lo; fence < this.fences.length; fence++) {
      const pairs = this.readRun(fence);
      for (let i = 0; i < pairs.length; i += 2) {
        if (pairs[i] === hash) seqs.push(pairs[i + 1]!);
        else if (pairs[i]! > hash) return seqs;
      }
    }
    return seqs;
  }

  /** The pairs from index `from` on, `count` of them at most, as (hash, seq) in one array: for merging. */
  readPairs(from: number, count: number): Float64Array {
    const n = Math.max(0, Math.min(count, this.header.keys - from));
    const pairs = new Float64Array(2 * n);
    const bytes = new Uint8Array(pairs.buffer);
    readSync(this.fd, bytes, 0, bytes.byteLength, this.pairsAt + from * PAIR_BYTES);
    return pairs;
  }

  close(): void {
    closeSync(this.fd);
  }

  private readRun(fence: number): Float64Array {
    return this.readPairs(fence * FENCE_EVERY, FENCE_EVERY);
  }
}
