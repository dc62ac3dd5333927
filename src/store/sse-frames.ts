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
 * written once into the page's one buffer. `expectedBytes`: as jsonArrayWithin's.
 */
export function sseFrames(items: Iterable<StreamItem>, maxBytes: number, emptyEnd: number, expectedBytes = FIRST_BYTES): StreamPage {
  const out = new ByteBuilder(Math.min(maxBytes, expectedBytes));
  const seqs: number[] = [];
  const topics: string[] = [];
  const ends: number[] = [];
  for (const { seq, topic, parts } of items) {
    const start = out.length;
    out.text(`id: ${seq}\nevent: event\ndata: `);
    for (const part of parts) oneLine(out, part);
    out.text('\n\n');
    if (seqs.length > 0 && out.length > maxBytes) {
      out.truncate(start);
      break;
    }
    seqs.push(seq);
    topics.push(topic);
    ends.push(out.length);
  }
  return {
    // A buffer of its own (never a pooled slab), so it can be transferred to another thread.
    frames: out.take(),
    seqs: Float64Array.from(seqs),
    ends: Uint32Array.from(ends),
    topics,
    end: seqs.length > 0 ? seqs[seqs.length - 1]! : emptyEnd,
    pending: false,
  };
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

/** Appends `part` with each line break (CRLF, CR or LF) turned into a new `data:` line. */
function oneLine(out: ByteBuilder, part: Part): void {
  const breaks = typeof part === 'string' ? /[\r\n]/.test(part) : part.includes(0x0a) || part.includes(0x0d);
  if (!breaks) return out.append(part);
  const text = typeof part === 'string' ? part : Buffer.from(part.buffer, part.byteOffset, part.byteLength).toString('utf8');
  out.text(text.split(/\r\n|\r|\n/).join('\ndata: '));
}
