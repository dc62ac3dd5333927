import { closeSync, fdatasyncSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { BloomFilter } from './bloom.js';

/*
 * A sealed segment of the dedup index: the (hash, seq) pairs of the keys stored in one seq range, written
 * once, sorted by (hash, seq), never changed. Layout (little-endian):
 *
 *   header     64 B  magic, version, key count, first/last seq, section sizes, CRC-32 of the sections and of the header
 *   filter            a blocked Bloom filter of the hashes (bloom.ts), ~1.25 B a key, held in memory
 *   fences            the first hash of every block of PAIRS_PER_BLOCK pairs, held in memory, so a lookup reads one block
 *   checksums   4 B   CRC-32 of every block of pairs, held in memory
 *   pairs      16 B   hash (float64), seq (float64) per key, in blocks of 4 KiB
 *
 * A file is written to a temporary name, fsynced and renamed, and only then registered in the database;
 * a file that is not registered is a leftover of a crash and is deleted. One whose header, size or
 * sections are wrong fails `open`; a block of pairs that fails its checksum or its order fails the read
 * that meets it (SegmentDamage), at start-up, in a lookup or in a merge alike. Either way the segment is
 * rebuilt from the rows of its range (sealed-segments.ts): damaged bytes are never trusted.
 */

const MAGIC = 0x5359454b_41535350n; // "PSSAKEYS"
/** 2 added the block checksums: a version-1 file fails `open` and is rebuilt once. */
const VERSION = 2;
const HEADER_BYTES = 64;
const PAIR_BYTES = 16;
/** Pairs a fence and a checksum cover: 256 × 16 B = one 4 KiB read per lookup. */
export const PAIRS_PER_BLOCK = 256;
const BLOCK_BYTES = PAIRS_PER_BLOCK * PAIR_BYTES;
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

/** A block of an open segment read back damaged: the segment must be rebuilt from the rows. */
export class SegmentDamage extends SegmentFileError {
  override name = 'SegmentDamage';
  constructor(readonly segment: SegmentReader, what: string) {
    super(`${segment.path}: ${what}`);
  }
}

const blocksOf = (keys: number) => Math.ceil(keys / PAIRS_PER_BLOCK);

/** Writes a segment's sorted pairs as they come; `finish` makes it durable under its final name. */
export class SegmentWriter {
  private readonly fd: number;
  private readonly filter: BloomFilter;
  private readonly fences: Float64Array;
  private readonly checksums: Uint32Array;
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
    this.fences = new Float64Array(blocksOf(maxKeys));
    this.checksums = new Uint32Array(blocksOf(maxKeys));
    this.pairsAt = HEADER_BYTES + this.filter.bytes.byteLength + this.fences.byteLength + this.checksums.byteLength;
    // Whole blocks: every flush but the last one writes complete blocks, so each is checksummed once.
    this.buffer = new Float64Array(2 * 16 * PAIRS_PER_BLOCK);
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
    if (index % PAIRS_PER_BLOCK === 0) this.fences[index / PAIRS_PER_BLOCK] = hash;
    this.filter.add(hash);
    this.buffer[this.buffered++] = hash;
    this.buffer[this.buffered++] = seq;
    if (this.buffered === this.buffer.length) this.flush();
  }

  /** Writes the header and sections, fsyncs, and renames the file into place. */
  finish(firstSeq: number, lastSeq: number): SegmentHeader {
    this.flush();
    const blocks = blocksOf(this.written);
    const fences = new Uint8Array(this.fences.buffer, 0, blocks * 8);
    const checksums = new Uint8Array(this.checksums.buffer, 0, blocks * 4);
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeBigUInt64LE(MAGIC, 0);
    header.writeUInt32LE(VERSION, 8);
    header.writeDoubleLE(this.written, 12);
    header.writeDoubleLE(firstSeq, 20);
    header.writeDoubleLE(lastSeq, 28);
    header.writeUInt32LE(this.filter.bytes.byteLength, 36);
    header.writeUInt32LE(this.fences.byteLength, 40);
    header.writeUInt32LE(crc32(checksums, crc32(fences, crc32(this.filter.bytes))), 44);
    header.writeUInt32LE(this.checksums.byteLength, 48);
    header.writeUInt32LE(crc32(header.subarray(0, 60)), 60);
    writeSync(this.fd, header, 0, HEADER_BYTES, 0);
    writeSync(this.fd, this.filter.bytes, 0, this.filter.bytes.byteLength, HEADER_BYTES);
    writeSync(this.fd, fences, 0, fences.byteLength, HEADER_BYTES + this.filter.bytes.byteLength);
    writeSync(this.fd, checksums, 0, checksums.byteLength, HEADER_BYTES + this.filter.bytes.byteLength + this.fences.byteLength);
    fsyncSync(this.fd);
    closeSync(this.fd);
    renameSync(`${this.path}.tmp`, this.path);
    return { keys: this.written, firstSeq, lastSeq };
  }

  /** Gives up: deletes the temporary file (or, if that fails, the next start does). */
  abandon(): void {
    closeSync(this.fd);
    rmSync(`${this.path}.tmp`, { force: true });
  }

  private flush(): void {
    if (this.buffered === 0) return;
    const bytes = new Uint8Array(this.buffer.buffer, 0, this.buffered * 8);
    const firstBlock = this.written / PAIRS_PER_BLOCK;
    for (let at = 0; at < bytes.byteLength; at += BLOCK_BYTES) {
      this.checksums[firstBlock + at / BLOCK_BYTES] = crc32(bytes.subarray(at, at + BLOCK_BYTES));
    }
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

/** An open sealed segment: its filter, fences and checksums in memory, its pairs read on demand, a block at a time. */
export class SegmentReader {
  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly header: SegmentHeader,
    readonly filter: BloomFilter,
    private readonly fences: Float64Array,
    private readonly checksums: Uint32Array,
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
      const firstSeq = header.readDoubleLE(20);
      const lastSeq = header.readDoubleLE(28);
      const filterBytes = header.readUInt32LE(36);
      const fenceBytes = header.readUInt32LE(40);
      const checksumBytes = header.readUInt32LE(48);
      const blocks = blocksOf(keys);
      if (!Number.isSafeInteger(keys) || keys < 0 || !(firstSeq <= lastSeq) || filterBytes === 0 || filterBytes % 64 !== 0
        || fenceBytes < blocks * 8 || fenceBytes % 8 !== 0 || checksumBytes < blocks * 4) {
        throw new SegmentFileError(`${path}: inconsistent header`);
      }
      const pairsAt = HEADER_BYTES + filterBytes + fenceBytes + checksumBytes;
      if (fstatSync(fd).size !== pairsAt + keys * PAIR_BYTES) throw new SegmentFileError(`${path}: wrong size`);
      const sections = new Uint8Array(filterBytes + fenceBytes + checksumBytes);
      if (readSync(fd, sections, 0, sections.byteLength, HEADER_BYTES) !== sections.byteLength) {
        throw new SegmentFileError(`${path}: truncated sections`);
      }
      const filter = sections.subarray(0, filterBytes);
      const fences = new Float64Array(sections.buffer, filterBytes, blocks);
      const checksums = new Uint32Array(sections.buffer, filterBytes + fenceBytes, blocks);
      const sectionsCrc = crc32(new Uint8Array(checksums.buffer, checksums.byteOffset, checksums.byteLength),
        crc32(new Uint8Array(fences.buffer, fences.byteOffset, fences.byteLength), crc32(filter)));
      if (sectionsCrc !== header.readUInt32LE(44)) throw new SegmentFileError(`${path}: sections checksum mismatch`);
      for (let b = 1; b < blocks; b++) if (!(fences[b - 1]! <= fences[b]!)) throw new SegmentFileError(`${path}: fences out of order`);
      return new SegmentReader(path, fd, { keys, firstSeq, lastSeq }, new BloomFilter(filter), fences, checksums, pairsAt);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  /** Bytes of memory it holds. */
  get memoryBytes(): number {
    return this.filter.bytes.byteLength + this.fences.byteLength + this.checksums.byteLength;
  }

  /** Blocks of pairs in the file. */
  get blocks(): number {
    return this.fences.length;
  }

  /**
   * The seqs stored with `hash`, ascending; none (usually without touching the disk, or allocating) when
   * absent. Throws SegmentDamage if a block it reads is damaged.
   */
  seqsOf(hash: number): readonly number[] {
    if (!this.filter.mayContain(hash)) return NONE;
    // The last fence below the hash starts the search; equal hashes may spill over into the next blocks.
    let lo = 0;
    let hi = this.fences.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.fences[mid]! < hash) lo = mid;
      else hi = mid - 1;
    }
    const seqs: number[] = [];
    for (let block = lo; block < this.fences.length; block++) {
      const pairs = this.readBlocks(block, 1);
      for (let i = 0; i < pairs.length; i += 2) {
        if (pairs[i] === hash) seqs.push(pairs[i + 1]!);
        else if (pairs[i]! > hash) return seqs;
      }
    }
    return seqs;
  }

  /**
   * The pairs of blocks [first, first + count), as (hash, seq) in one array, each block checked: its
   * checksum, its fence, its order and its seqs inside the segment's range. Throws SegmentDamage.
   */
  readBlocks(first: number, count: number): Float64Array {
    const from = first * PAIRS_PER_BLOCK;
    const n = Math.max(0, Math.min(count * PAIRS_PER_BLOCK, this.header.keys - from));
    const pairs = new Float64Array(2 * n);
    const bytes = new Uint8Array(pairs.buffer);
    if (readSync(this.fd, bytes, 0, bytes.byteLength, this.pairsAt + from * PAIR_BYTES) !== bytes.byteLength) {
      throw new SegmentDamage(this, 'truncated pairs');
    }
    for (let at = 0; at < bytes.byteLength; at += BLOCK_BYTES) this.check(first + at / BLOCK_BYTES, pairs, at / 8);
    return pairs;
  }

  close(): void {
    closeSync(this.fd);
  }

  /** Checks the block `block`, found in `pairs` from index `at`. */
  private check(block: number, pairs: Float64Array, at: number): void {
    const end = Math.min(pairs.length, at + 2 * PAIRS_PER_BLOCK);
    if (crc32(new Uint8Array(pairs.buffer, at * 8, (end - at) * 8)) !== this.checksums[block]) {
      throw new SegmentDamage(this, `block ${block} fails its checksum`);
    }
    // Bytes that match their checksum were written so; these catch what a checksum collision would let by.
    const { firstSeq, lastSeq } = this.header;
    let ordered = pairs[at] === this.fences[block] && (block + 1 === this.fences.length || pairs[end - 2]! <= this.fences[block + 1]!);
    for (let i = at; ordered && i < end; i += 2) {
      const seq = pairs[i + 1]!;
      ordered = seq >= firstSeq && seq <= lastSeq && (i === at || pairs[i - 2]! < pairs[i]! || (pairs[i - 2] === pairs[i] && pairs[i - 1]! < seq));
    }
    if (!ordered) throw new SegmentDamage(this, `block ${block} out of order`);
  }
}
