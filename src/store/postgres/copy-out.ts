import pg from 'pg';
import { ByteBuilder } from '../../lib/byte-builder.js';

/*
 * A query's rows as PostgreSQL's binary COPY output, for the reads that turn many rows into bytes (stream
 * pages). A row of the extended protocol reaches JavaScript as a string per field: each doc is decoded from
 * UTF-8 and encoded back into the page, with the garbage that makes. Binary COPY hands over the fields'
 * bytes as they are (a text field is its UTF-8, a bigint its 8 bytes), which a page copies straight in.
 * COPY takes no parameters, so a statement's are written into its text as literals (`inlined`).
 */

/** `PGCOPY\n\377\r\n\0`, then 32-bit flags and the length of a header extension (COPY's "Binary Format"). */
const SIGNATURE = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00]);
const HEADER_BYTES = SIGNATURE.length + 8;

/** A query parameter as a literal: integers, booleans, text and text arrays, or NULL. */
export type Literal = number | boolean | string | readonly string[] | null | undefined;

/**
 * `sql` with each `$n` replaced by the literal of `values[n - 1]`. Every parameter that is not a number
 * or a boolean must be cast where it is used (`$3::text[]`): the literal alone says no type.
 */
export function inlined(sql: string, values: readonly Literal[]): string {
  return sql.replace(/\$(\d+)/g, (_, n: string) => literal(values[Number(n) - 1]));
}

function literal(value: Literal): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'boolean') return value ? 'TRUE' : 'FALSE';
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new TypeError(`not an integer parameter: ${value}`);
    return String(value);
  }
  if (typeof value === 'string') return pg.escapeLiteral(value);
  return value.length === 0 ? `'{}'` : `ARRAY[${value.map((text) => pg.escapeLiteral(text)).join(',')}]`;
}

/**
 * `COPY (query) TO STDOUT (FORMAT binary)` on `client`: its rows, read out of `into` (emptied first), whose
 * buffer they share: a caller may reuse it for the next copy once done with the rows.
 */
export function copyOut(client: pg.ClientBase, query: string, into: ByteBuilder): Promise<BinaryRows> {
  into.truncate(0);
  return new Promise((resolve, reject) => {
    const copy = new CopyOut(`COPY (${query}) TO STDOUT (FORMAT binary)`, into, (error) => {
      if (error) reject(error);
      else resolve(new BinaryRows(into.written));
    });
    client.query(copy);
  });
}

/**
 * The driver's side of one COPY TO: the client hands it the server's messages (the methods below are the
 * driver's names). The data, in messages of any size, goes into one buffer as it comes.
 */
class CopyOut implements pg.Submittable {
  /** `callback`: the driver's name too; its query timeout wraps it. */
  constructor(private readonly text: string, private readonly out: ByteBuilder, public callback: (error: Error | null) => void) {}

  submit(connection: pg.Connection): void {
    connection.query(this.text);
  }

  handleCopyData(message: { chunk: Buffer }): void {
    this.out.bytes(message.chunk);
  }

  handleCommandComplete(): void {}

  handleReadyForQuery(): void {
    this.callback(null);
  }

  handleError(error: Error): void {
    this.callback(error);
  }
}

/**
 * The rows of a binary COPY's output, one at a time (`next`); the current row's fields, by position, read
 * in place. Views (`bytes`) share the output's buffer.
 */
export class BinaryRows {
  private at: number;
  private count = 0;
  private readonly starts: number[] = [];
  private readonly lengths: number[] = [];

  constructor(private readonly output: Buffer) {
    if (output.length < HEADER_BYTES || !output.subarray(0, SIGNATURE.length).equals(SIGNATURE)) throw new Error('not binary COPY output');
    this.at = HEADER_BYTES + output.readInt32BE(HEADER_BYTES - 4);
  }

  /** The current row's number of fields. */
  get fields(): number {
    return this.count;
  }

  /** Moves to the next row; false after the last. */
  next(): boolean {
    const { output } = this;
    const fields = output.readInt16BE(this.at);
    this.at += 2;
    if (fields === -1) return false;
    this.count = fields;
    for (let i = 0; i < fields; i++) {
      const length = output.readInt32BE(this.at);
      this.at += 4;
      this.starts[i] = this.at;
      this.lengths[i] = length;
      if (length > 0) this.at += length;
    }
    return true;
  }

  isNull(field: number): boolean {
    return this.lengths[field] === -1;
  }

  /** A bigint field, which must lie within ±2^53 (seqs do). */
  int64(field: number): number {
    if (this.lengths[field] !== 8) throw new Error(`field ${field} is not a bigint`);
    const start = this.starts[field]!;
    const value = this.output.readInt32BE(start) * 2 ** 32 + this.output.readUInt32BE(start + 4);
    if (!Number.isSafeInteger(value)) throw new Error(`field ${field} is beyond 2^53`);
    return value;
  }

  /** The whole output, which `offset` indexes. */
  get bytesRead(): Buffer {
    return this.output;
  }

  /** Where a field's bytes start in the output. */
  offset(field: number): number {
    return this.starts[field]!;
  }

  /** A field's size in bytes; -1 for NULL. */
  length(field: number): number {
    return this.lengths[field]!;
  }

  bool(field: number): boolean {
    return this.output[this.starts[field]!] !== 0;
  }

  /** A text field's UTF-8 from its byte `from` on, in place. */
  bytes(field: number, from = 0): Buffer {
    const start = this.starts[field]!;
    return this.output.subarray(start + from, start + this.lengths[field]!);
  }
}
