import type { Part } from '../../lib/byte-builder.js';
import { frameSize, sseFrames, type StreamItem } from '../sse-frames.js';
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
  // The frames that fit, as sseFrames would cut them: at least one.
  const seqs: number[] = [];
  const oneLine: boolean[] = [];
  let bytes = 0;
  do {
    const seq = rows.int64(2);
    const frame = frameSize(seq, itemOf(rows, seq));
    if (seqs.length > 0 && bytes + frame.bytes > maxBytes) break;
    seqs.push(seq);
    oneLine.push(frame.oneLine);
    bytes += frame.bytes;
  } while (rows.next());
  const page = new RowsPage(Float64Array.from(seqs), pending, purgeHorizon, () => {
    rows.rewind();
    rows.next();
    const built = sseFrames(streamItems(rows, oneLine), Infinity, 0, bytes);
    done();
    return built;
  });
  return { page, frameBytes: bytes / seqs.length };
}

/** A row's /events item: `{"seq":` + seq + `,` + its doc after the `{`, as stored. */
const itemOf = (rows: BinaryRows, seq: number): Part[] => [`{"seq":${seq},`, rows.bytes(4, 1)];

/** As many rows as `oneLine` has from the current one on, each known to have a line break or not. */
function* streamItems(rows: BinaryRows, oneLine: readonly boolean[]): Generator<StreamItem> {
  for (let i = 0; i < oneLine.length; i++, rows.next()) {
    const seq = rows.int64(2);
    yield { seq, topic: rows.text(3), parts: itemOf(rows, seq), oneLine: oneLine[i]! };
  }
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
