import type { EventReader, StreamPage } from '../store/store.js';

/*
 * Time ranges of reads (`since`, `until`; README, "Time ranges"). Both ends compare received_at, the
 * store's time, and cut the log at one seq each: `since` starts at the first event, in commit order,
 * received at or after it; `until` ends before the first event, in commit order, received after it.
 * received_at is stamped when a request arrives and seq when it commits, so the two orders agree except
 * between requests in flight together (or replicas' clocks): cutting at a seq keeps a range a contiguous
 * stretch of the log, which pages and resumes exactly.
 */

/**
 * A valid RFC 3339 time as received_at text (UTC ISO, which sorts as time). A valid time may fall outside
 * years 0-9999 in UTC, where the ISO form starts with a sign and would sort before every stored time: it is
 * clamped instead.
 */
export function receivedAtText(time: string): string {
  const iso = new Date(time).toISOString();
  if (iso.startsWith('+')) return '9999-12-31T23:59:59.999Z';
  return iso.startsWith('-') ? '0000-01-01T00:00:00.000Z' : iso;
}

/** Ends of ranges remembered; past this many the memory starts afresh. */
const MAX_REMEMBERED = 1_024;

/**
 * Where ranges end: the seq of the first event received after `until`, looked up once it exists and then
 * remembered (it never moves down: later commits take higher seqs), so a client paging through a long
 * range pays the index read once.
 */
export class RangeEnds {
  private readonly found = new Map<string, number>();

  constructor(private readonly reader: Pick<EventReader, 'firstReceivedAfter'>) {}

  /** The seq the range up to `until` (received_at text) ends before; undefined while no event received after it is stored. */
  async endOf(until: string): Promise<number | undefined> {
    const known = this.found.get(until);
    if (known !== undefined) return known;
    const end = await this.reader.firstReceivedAfter(until);
    if (end === undefined) return undefined;
    if (this.found.size >= MAX_REMEMBERED) this.found.clear();
    this.found.set(until, end);
    return end;
  }

  /**
   * A read bounded by the range up to `until`: `read(before)` reads below `before` (undefined: unbounded).
   * When the end is not stored before the read, it may be committed during it, and the page may then hold
   * it or later events: looked up again after the read, a found end that the page passes (by `lastSeq`;
   * undefined: not known) reads again below it. Resolves to the page and the range's end if known.
   */
  async read<T>(
    until: string, read: (before: number | undefined) => Promise<T>, lastSeq: (page: T) => number | undefined,
  ): Promise<{ page: T; end: number | undefined }> {
    const known = await this.endOf(until);
    const page = await read(known);
    if (known !== undefined) return { page, end: known };
    const end = await this.endOf(until);
    if (end === undefined) return { page, end };
    const last = lastSeq(page);
    return { page: last !== undefined && last < end ? page : await read(end), end };
  }
}

/** The events of a stream page that lie before `end` (a range's end); the page itself when all do. */
export function streamPageBefore(page: StreamPage, end: number): StreamPage {
  const { seqs, ends, topics, frames } = page;
  let count = seqs.length;
  while (count > 0 && seqs[count - 1]! >= end) count--;
  if (count === seqs.length) return page;
  return {
    frames: frames.subarray(0, count > 0 ? ends[count - 1]! : 0),
    seqs: seqs.subarray(0, count),
    ends: ends.subarray(0, count),
    topics: topics.slice(0, count),
    end: count > 0 ? seqs[count - 1]! : Math.min(page.end, end - 1),
    pending: page.pending,
  };
}
