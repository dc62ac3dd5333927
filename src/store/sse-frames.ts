import type { StreamPage } from './store.js';

/** One stored event for a stream page: its seq, topic and its /events item as UTF-8 parts. */
export interface StreamItem {
  seq: number;
  topic: string;
  parts: Uint8Array[];
}

const DATA_BREAK = Buffer.from('\ndata: ');

/**
 * A stream page (see StreamPage) of `items` within `maxBytes`, always holding at least one. The data line is
 * the item exactly as /events serves it; a payload stored with line breaks in its JSON whitespace is sent as
 * several `data:` lines, which an SSE client joins with "\n" (the JSON means the same).
 */
export function sseFrames(items: Iterable<StreamItem>, maxBytes: number, emptyEnd: number): StreamPage {
  const chunks: Uint8Array[] = [];
  const seqs: number[] = [];
  const topics: string[] = [];
  const ends: number[] = [];
  let bytes = 0;
  for (const { seq, topic, parts } of items) {
    const frame = [Buffer.from(`id: ${seq}\nevent: event\ndata: `), ...parts.flatMap(oneLine), FRAME_END];
    const size = frame.reduce((sum, part) => sum + part.byteLength, 0);
    if (seqs.length > 0 && bytes + size > maxBytes) break;
    chunks.push(...frame);
    bytes += size;
    seqs.push(seq);
    topics.push(topic);
    ends.push(bytes);
  }
  return {
    // A buffer of its own (never a pooled slab), so it can be transferred to another thread.
    frames: concatUnpooled(chunks, bytes),
    seqs: Float64Array.from(seqs),
    ends: Uint32Array.from(ends),
    topics,
    end: seqs.length > 0 ? seqs[seqs.length - 1]! : emptyEnd,
    pending: false,
  };
}
const FRAME_END = Buffer.from('\n\n');

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

/** `part` with each line break (CRLF, CR or LF) turned into a new `data:` line. */
function oneLine(part: Uint8Array): Uint8Array[] {
  if (!part.includes(0x0a) && !part.includes(0x0d)) return [part];
  const lines = Buffer.from(part.buffer, part.byteOffset, part.byteLength).toString('utf8').split(/\r\n|\r|\n/);
  return lines.flatMap((line, i) => (i === 0 ? [Buffer.from(line)] : [DATA_BREAK, Buffer.from(line)]));
}

function concatUnpooled(chunks: Uint8Array[], bytes: number): Uint8Array {
  const out = Buffer.allocUnsafeSlow(bytes);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}
