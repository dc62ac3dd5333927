import { itemHead } from '../event-doc.js';
import { frameSize, sseFrames, StreamPageBuilder } from '../sse-frames.js';
import type { PurgeHorizon, StreamPage } from '../store.js';
import type { BinaryRows } from './copy-out.js';

/*
 * A PostgreSQL stream page out of its rows (visible_end, pending, seq, topic, doc, then the purge horizon's
 * max and min if read; see STREAM in postgres-reader.ts). Where it ends is settled first, from the rows'
 * sizes: its frames are built on first use. A catch-up stream reads its next page from there before it
 * writes this one (subscription.ts), so PostgreSQL runs that read while this thread builds the frames,
 * which cost it more than anything else of a page; built with the read, they held up the next read
 * (~7 ms of each 1 MiB page, at ~17 ms a read).
 */

/**
 * The page of `rows`, positioned on its first, with the mean bytes of its frames (none for an empty page);
 * `done` once the rows are no longer needed (its frames built).
 */
export function streamPageOf(rows: BinaryRows, maxBytes: number, done: () => void): { page: StreamPage; frameBytes?: number } {
  const [visibleEnd, pending] = [rows.int64(0), rows.bool(1)];
  const purgeHorizon = rows.fields > 5 ? { max: rows.int64(5), min: rows.int64(6) } : undefined;
  if (rows.isNull(2)) {
    done();
    return { page: { ...sseFrames([], maxBytes, visibleEnd), pending, ...(purgeHorizon && { purgeHorizon }) } };
  }
  // The frames that fit, as sseFrames would cut them: at least one. What the build needs of each row is
  // kept, so it reads no row again.
  const seqs: number[] = [];
  const rowsKept: { head: string; oneLine: boolean; topic: number; topicBytes: number; doc: number; docBytes: number }[] = [];
  let bytes = 0;
  do {
    const seq = rows.int64(2);
    const head = itemHead(seq);
    const frame = frameSize(seq, [head, rows.bytes(4, 1)]);
    if (seqs.length > 0 && bytes + frame.bytes > maxBytes) break;
    seqs.push(seq);
    rowsKept.push({ head, oneLine: frame.oneLine, topic: rows.offset(3), topicBytes: rows.length(3), doc: rows.offset(4), docBytes: rows.length(4) });
    bytes += frame.bytes;
  } while (rows.next());
  const output = rows.bytesRead;
  const page = new RowsPage(Float64Array.from(seqs), pending, purgeHorizon, () => {
    const built = new StreamPageBuilder(bytes);
    rowsKept.forEach(({ head, oneLine, topic: at, topicBytes, doc, docBytes }, i) => {
      const topic = output.toString('utf8', at, at + topicBytes);
      // The doc's bytes after its `{`, copied in place; one with a line break goes through the general path.
      if (oneLine) built.addOneLine(seqs[i]!, topic, head, output, doc + 1, doc + docBytes);
      else built.add({ seq: seqs[i]!, topic, parts: [head, output.subarray(doc + 1, doc + docBytes)] });
    });
    done();
    return built.page(0);
  });
  return { page, frameBytes: bytes / seqs.length };
}

class RowsPage implements StreamPage {
  readonly end: number;
  private page: StreamPage | undefined;

  constructor(readonly seqs: Float64Array, readonly pending: boolean, readonly purgeHorizon: PurgeHorizon | undefined, private readonly build: () => StreamPage) {
    this.end = seqs[seqs.length - 1]!;
  }

  get frames(): Uint8Array {
    return this.built().frames;
  }

  get ends(): Uint32Array {
    return this.built().ends;
  }

  get topics(): string[] {
    return this.built().topics;
  }

  private built(): StreamPage {
    this.page ??= this.build();
    return this.page;
  }
}
