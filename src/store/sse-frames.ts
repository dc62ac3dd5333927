import { ByteBuilder, type Part } from '../lib/byte-builder.js';
import type { StreamPage } from './store.js';

/** One stored event for a stream page: its seq, topic and its /events item as parts. */
export interface StreamItem {
  seq: number;
  topic: string;
  parts: Part[];
}

/** A page's first allocation: most pages are far smaller than their cap. */
const FIRST_BYTES = 64 * 1024;

/**
 * A stream page (see StreamPage) of `items` within `maxBytes`, always holding at least one. The data line is
 * the item exactly as /events serves it; a payload stored with line breaks in its JSON whitespace is sent as
 * several `data:` lines, which an SSE client joins with "\n" (the JSON means the same). Each frame is
 * written once into the page's one buffer.
 */
export function sseFrames(items: Iterable<StreamItem>, maxBytes: number, emptyEnd: number): StreamPage {
  const page = new StreamPageBuilder(Math.min(maxBytes, FIRST_BYTES));
  for (const item of items) if (!page.add(item, maxBytes)) break;
  return page.page(emptyEnd);
}

/** A stream page written frame by frame (see sseFrames). */
export class StreamPageBuilder {
  private readonly out: ByteBuilder;
  private readonly seqs: number[] = [];
  private readonly topics: string[] = [];
  private readonly ends: number[] = [];

  constructor(expectedBytes: number) {
    this.out = new ByteBuilder(expectedBytes);
  }

  /** Adds the frame of `item`, unless it would take the page past `maxBytes` and is not its first. */
  add({ seq, topic, parts }: StreamItem, maxBytes = Infinity): boolean {
    const { out } = this;
    const start = out.length;
    out.text(frameHead(seq));
    for (const part of parts) oneLine(out, part);
    out.bytes(FRAME_END_BYTES);
    if (this.seqs.length > 0 && out.length > maxBytes) {
      out.truncate(start);
      return false;
    }
    this.added(seq, topic);
    return true;
  }

  /**
   * Adds the frame of an event whose item is `head` (text) then `bytes` from `start` to `end`, neither with
   * a line break (frameSize said so): one text write and one copy.
   */
  addOneLine(seq: number, topic: string, head: string, bytes: Buffer, start: number, end: number): void {
    this.out.text(frameHead(seq) + head);
    this.out.range(bytes, start, end);
    this.out.bytes(FRAME_END_BYTES);
    this.added(seq, topic);
  }

  page(emptyEnd: number): StreamPage {
    const { seqs } = this;
    return {
      // A buffer of its own (never a pooled slab), so it can be transferred to another thread.
      frames: this.out.take(),
      seqs: Float64Array.from(seqs),
      ends: Uint32Array.from(this.ends),
      topics: this.topics,
      end: seqs.length > 0 ? seqs[seqs.length - 1]! : emptyEnd,
      pending: false,
    };
  }

  private added(seq: number, topic: string): void {
    this.seqs.push(seq);
    this.topics.push(topic);
    this.ends.push(this.out.length);
  }
}

/**
 * The frame that tells a subscriber events after its cursor `after` were purged and the stream goes on after
 * `resumedAfter`. Its id starts with that seq, so a client reconnecting right after it resumes there, not
 * before the gap (see ToldPurges for the rest of it).
 */
export function gapFrame(after: number, resumedAfter: number, id: string): Uint8Array {
  return Buffer.from(`id: ${id}\nevent: gap\ndata: ${JSON.stringify({ after, resumed_after: resumedAfter })}\n\n`);
}

/**
 * The frame that ends a stream bounded by `until` (an RFC 3339 time): every event of the range was sent, and
 * the range holds no seq above `lastSeq`. It has no id, so a client's Last-Event-ID stays its last event's.
 */
export function endFrame(until: string, lastSeq: number): Uint8Array {
  return Buffer.from(`event: end\ndata: ${JSON.stringify({ until, last_seq: lastSeq })}\n\n`);
}

const frameHead = (seq: number) => `id: ${seq}\nevent: event\ndata: `;
const FRAME_END = '\n\n';
const FRAME_END_BYTES = Buffer.from(FRAME_END);

/** The bytes of the frame sseFrames writes for an event of `seq` whose item is `parts`, and whether it has no line break. */
export function frameSize(seq: number, parts: readonly Part[]): { bytes: number; oneLine: boolean } {
  let bytes = frameHead(seq).length + FRAME_END.length;
  let oneLine = true;
  for (const part of parts) {
    const lines = dataLines(part);
    oneLine &&= lines === undefined;
    bytes += lines === undefined ? Buffer.byteLength(part) : Buffer.byteLength(lines);
  }
  return { bytes, oneLine };
}

/** Appends `part` with each line break (CRLF, CR or LF) turned into a new `data:` line. */
function oneLine(out: ByteBuilder, part: Part): void {
  const lines = dataLines(part);
  if (lines === undefined) out.append(part);
  else out.text(lines);
}

/** `part` as `data:` lines, if it has a line break. */
function dataLines(part: Part): string | undefined {
  const breaks = typeof part === 'string' ? /[\r\n]/.test(part) : part.includes(0x0a) || part.includes(0x0d);
  if (!breaks) return undefined;
  const text = typeof part === 'string' ? part : Buffer.from(part.buffer, part.byteOffset, part.byteLength).toString('utf8');
  return text.split(/\r\n|\r|\n/).join('\ndata: ');
}
