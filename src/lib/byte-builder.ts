/** A piece of a page: text (written as UTF-8) or bytes as they are. */
export type Part = string | Uint8Array;

/**
 * Text and bytes appended into one buffer that grows as needed: a page is built with one copy of each part,
 * without a Buffer per part. Its buffers are its own (never a pooled slab), so a page can be transferred to
 * another thread.
 */
export class ByteBuilder {
  private buffer: Buffer;
  length = 0;

  constructor(initialBytes: number) {
    this.buffer = Buffer.allocUnsafeSlow(Math.max(1024, initialBytes));
  }

  text(text: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit; near the end, the exact size, so that a buffer sized for
    // the whole page (ASCII) is filled to the byte and taken without a copy.
    if (this.length + text.length * 3 > this.buffer.byteLength) this.reserve(Buffer.byteLength(text));
    this.length += this.buffer.write(text, this.length, 'utf8');
  }

  bytes(bytes: Uint8Array): void {
    this.reserve(bytes.byteLength);
    this.buffer.set(bytes, this.length);
    this.length += bytes.byteLength;
  }

  /** `bytes` from `start` to `end`, copied without making a view of them. */
  range(bytes: Buffer, start: number, end: number): void {
    this.reserve(end - start);
    this.length += bytes.copy(this.buffer, this.length, start, end);
  }

  append(part: Part): void {
    if (typeof part === 'string') this.text(part);
    else this.bytes(part);
  }

  /** Drops what was appended after `length`. */
  truncate(length: number): void {
    this.length = Math.min(this.length, length);
  }

  /** The bytes so far, in place: valid until the next append. */
  get written(): Buffer {
    return this.buffer.subarray(0, this.length);
  }

  /** The bytes, in a buffer of exactly their length and of its own. */
  take(): Buffer {
    if (this.length === this.buffer.byteLength) return this.buffer;
    const out = Buffer.allocUnsafeSlow(this.length);
    this.buffer.copy(out, 0, 0, this.length);
    return out;
  }

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.byteLength) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(2 * this.buffer.byteLength, this.length + bytes));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }
}
