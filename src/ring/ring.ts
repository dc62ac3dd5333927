/*
 * Lock-free single-producer / single-consumer ring on one SharedArrayBuffer.
 *
 * Memory layout
 *   bytes [0, 256)       control block, read through an Int32Array; producer and consumer fields sit on
 *                        separate 64-byte cache lines so the two threads do not contend for one line:
 *                          slot  0  WRITE_POS   bytes ever published by the producer   (mod 2^32)
 *                          slot  1  WRITE_COUNT records ever published                 (mod 2^32)
 *                          slot 16  READ_POS    bytes ever released by the consumer    (mod 2^32)
 *                          slot 17  READ_COUNT  records ever released                  (mod 2^32)
 *                          slot 32  CLOSED      1 once the producer will write no more
 *   bytes [256, 256+cap) data; `cap` is a power of two, so position p lives at index p & (cap - 1).
 *
 * Positions only ever grow (modulo 2^32, as in Linux's kfifo): used space is (WRITE_POS - READ_POS) >>> 0,
 * which stays exact because cap <= 2^30. A record is a u32 little-endian body length, then the body,
 * padded to 4 bytes. A record never splits at the end of the buffer: when it does not fit in the
 * contiguous tail, the producer writes WRAP as the length and the record starts at index 0; the skipped
 * tail counts as used until the consumer passes it.
 *
 * Ordering and visibility
 *   Each position has exactly one writer, so no compare-and-swap is needed. JavaScript Atomics are
 *   sequentially consistent and an Atomics.store synchronizes with the Atomics.load that observes it.
 *   The producer writes record bytes with plain stores and only then publishes them with
 *   Atomics.store(WRITE_POS); a consumer whose Atomics.load(WRITE_POS) sees that value therefore sees
 *   every byte before it. Symmetrically the consumer calls Atomics.store(READ_POS) only once it is done
 *   with the bytes (for the aggregator: once the batch that holds them and every batch before it have
 *   committed), and the producer Atomics.loads READ_POS before it reuses them. The consumer may read
 *   ahead of what it released and release in steps (release(upTo)): READ_POS and READ_COUNT only move
 *   forward, to record boundaries it has read, so the producer never reuses bytes still being committed. The producer never waits; the consumer sleeps in Atomics.waitAsync on
 *   WRITE_POS, woken by Atomics.notify, with a timeout so it also notices CLOSED.
 */

const CONTROL_BYTES = 256;
const WRITE_POS = 0;
const WRITE_COUNT = 1;
const READ_POS = 16;
const READ_COUNT = 17;
const CLOSED = 32;

const HEADER_BYTES = 4;
const WRAP = 0xffffffff;
const MIN_CAPACITY = 64;
const MAX_CAPACITY = 2 ** 30;

const align4 = (n: number): number => (n + 3) & ~3;

/** Creates the shared memory for a ring whose data area holds `capacity` bytes (a power of two). */
export function createRingBuffer(capacity: number): SharedArrayBuffer {
  if (!Number.isInteger(capacity) || capacity < MIN_CAPACITY || capacity > MAX_CAPACITY || (capacity & (capacity - 1)) !== 0) {
    throw new RangeError(`ring capacity must be a power of two between ${MIN_CAPACITY} and ${MAX_CAPACITY} bytes, got ${capacity}`);
  }
  return new SharedArrayBuffer(CONTROL_BYTES + capacity);
}

/** The view both sides share: control words, data bytes and the read-only occupancy figures. */
class RingView {
  protected readonly control: Int32Array;
  /** The data area; record bodies are read and written here at the offsets the ring hands out. */
  readonly data: Buffer;
  readonly capacity: number;
  protected readonly mask: number;

  constructor(buffer: SharedArrayBuffer) {
    this.capacity = buffer.byteLength - CONTROL_BYTES;
    this.mask = this.capacity - 1;
    this.control = new Int32Array(buffer, 0, CONTROL_BYTES / 4);
    this.data = Buffer.from(buffer, CONTROL_BYTES, this.capacity);
  }

  /** Bytes written but not yet released by the consumer. */
  usedBytes(): number {
    return (Atomics.load(this.control, WRITE_POS) - Atomics.load(this.control, READ_POS)) >>> 0;
  }

  /** Records written but not yet released by the consumer. */
  depth(): number {
    return (Atomics.load(this.control, WRITE_COUNT) - Atomics.load(this.control, READ_COUNT)) >>> 0;
  }

  isClosed(): boolean {
    return Atomics.load(this.control, CLOSED) === 1;
  }
}

/**
 * The producing side. Writes are transactional so a multi-record request is all-or-nothing:
 * `begin()`, then `reserve()` per record (write the body at the returned offset), then `commit()` to
 * publish every record at once, or `rollback()` to leave no trace.
 */
export class RingProducer extends RingView {
  private cursor = 0;
  private cursorCount = 0;
  private readPos = 0;
  private open = false;

  /** The largest body that is sure to fit into an empty ring, wherever its positions stand. */
  get maxRecordBytes(): number {
    return this.capacity / 2 - HEADER_BYTES;
  }

  begin(): void {
    this.cursor = Atomics.load(this.control, WRITE_POS) >>> 0;
    this.cursorCount = Atomics.load(this.control, WRITE_COUNT) >>> 0;
    this.readPos = Atomics.load(this.control, READ_POS) >>> 0;
    this.open = true;
  }

  /**
   * Claims room for one record of `bodyLength` bytes and returns the index in `data` where its body
   * goes, or -1 when the ring has no room (the caller then rolls back and answers 503).
   */
  reserve(bodyLength: number): number {
    if (!this.open) throw new Error('reserve() outside begin()/commit()');
    const size = HEADER_BYTES + align4(bodyLength);
    let index = this.cursor & this.mask;
    const tail = this.capacity - index;
    const skip = size > tail ? tail : 0;
    if (!this.fits(skip + size)) {
      this.readPos = Atomics.load(this.control, READ_POS) >>> 0;
      if (!this.fits(skip + size)) return -1;
    }
    if (skip > 0) {
      this.data.writeUInt32LE(WRAP, index);
      index = 0;
    }
    this.data.writeUInt32LE(bodyLength, index);
    this.cursor = (this.cursor + skip + size) >>> 0;
    this.cursorCount = (this.cursorCount + 1) >>> 0;
    return index + HEADER_BYTES;
  }

  /** Publishes every record reserved since begin() and wakes the consumer. */
  commit(): void {
    this.open = false;
    Atomics.store(this.control, WRITE_COUNT, this.cursorCount | 0);
    Atomics.store(this.control, WRITE_POS, this.cursor | 0);
    Atomics.notify(this.control, WRITE_POS);
  }

  /** Forgets every record reserved since begin(); the consumer never saw them. */
  rollback(): void {
    this.open = false;
  }

  /** Tells the consumer that no more records will come; it drains what is there and stops. */
  close(): void {
    Atomics.store(this.control, CLOSED, 1);
    Atomics.notify(this.control, WRITE_POS);
  }

  private fits(bytes: number): boolean {
    const used = (this.cursor - this.readPos) >>> 0;
    return used + bytes <= this.capacity;
  }
}

/** Where one record's body lies in `data`. */
export interface RecordSpan {
  start: number;
  end: number;
}

/** A record boundary the consumer has read up to: its position and the records before it (both mod 2^32). */
export interface RingMark {
  position: number;
  records: number;
}

/**
 * The consuming side. `next()` reads ahead of what has been released; `release()` hands the records read
 * (all of them, or those before a mark) back to the producer — call it only once they are durable.
 */
export class RingConsumer extends RingView {
  private cursor: number;
  private cursorCount: number;

  constructor(buffer: SharedArrayBuffer) {
    super(buffer);
    // A restarted consumer resumes from what its predecessor released, not from what it had read.
    this.cursor = Atomics.load(this.control, READ_POS) >>> 0;
    this.cursorCount = Atomics.load(this.control, READ_COUNT) >>> 0;
  }

  /** The position just past the last record read: what release() would publish. */
  get position(): number {
    return this.cursor;
  }

  /** Where reading stands now, for a later release(upTo). */
  get mark(): RingMark {
    return { position: this.cursor, records: this.cursorCount };
  }

  hasNext(): boolean {
    return (Atomics.load(this.control, WRITE_POS) >>> 0) !== this.cursor;
  }

  /** The next published record, or undefined when the consumer has caught up with the producer. */
  next(): RecordSpan | undefined {
    if (!this.hasNext()) return undefined;
    let index = this.cursor & this.mask;
    let length = this.data.readUInt32LE(index);
    if (length === WRAP) {
      this.cursor = (this.cursor + this.capacity - index) >>> 0;
      index = 0;
      length = this.data.readUInt32LE(0);
    }
    this.cursor = (this.cursor + HEADER_BYTES + align4(length)) >>> 0;
    this.cursorCount = (this.cursorCount + 1) >>> 0;
    return { start: index + HEADER_BYTES, end: index + HEADER_BYTES + length };
  }

  /**
   * Moves past records up to `position` without returning them, for records a crashed predecessor had
   * already made durable. Returns how many records it passed.
   */
  skipTo(position: number): number {
    let skipped = 0;
    while (((position - this.cursor) | 0) > 0 && this.next() !== undefined) skipped++;
    return skipped;
  }

  /** Gives the records before `upTo`, a mark taken since the last release (by default every record read so far), back to the producer. */
  release(upTo: RingMark = this.mark): void {
    Atomics.store(this.control, READ_COUNT, upTo.records | 0);
    Atomics.store(this.control, READ_POS, upTo.position | 0);
  }

  /** Resolves when a record may be readable, the ring closed, or `timeoutMs` passed; never blocks the thread. */
  async waitForData(timeoutMs: number): Promise<void> {
    if (this.hasNext() || this.isClosed()) return;
    const result = Atomics.waitAsync(this.control, WRITE_POS, this.cursor | 0, timeoutMs);
    if (!result.async) return;
    // A pending Atomics.waitAsync does not keep Node's event loop alive; this timer does.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([result.value, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }
}
