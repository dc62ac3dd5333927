import type { Logger } from '../logger.js';
import { endFrame, gapFrame } from '../store/sse-frames.js';
import type { PurgeHorizon, ReadableTopics, StreamPage, StreamPageQuery } from '../store/store.js';
import type { TopicScope } from '../topic-scope.js';
import type { BudgetShare, ReadAheadBudget } from './read-ahead.js';
import { behind } from './purge-check.js';
import { ToldPurges } from './told-purges.js';
import { streamPageBefore } from './time-range.js';

/** A subscriber's socket, as the stream sees it. */
export interface StreamSink {
  /** Queues bytes for the client. */
  write(bytes: Uint8Array): void;
  /** Bytes queued that the client has not taken yet. */
  readonly bufferedBytes: number;
  /** True once a write passed the socket's own buffer, until the client takes it ('drain'). */
  readonly needsDrain: boolean;
  /** Resolves true at 'drain', false if the client took nothing for `timeoutMs` or went away. */
  drained(timeoutMs: number): Promise<boolean>;
  /** Ends the stream after what is queued; `destroy` drops it at once. */
  end(): void;
  destroy(): void;
}

/** Where a stream starts: after this seq, over these topics (undefined: every topic, or every readable one). */
export interface StreamStart {
  after: number;
  topics: readonly string[] | undefined;
  /** From a gap's id sent back as Last-Event-ID: the purges that gap told of (see ToldPurges). */
  toldSum?: bigint;
  /** An access token's readable topics; undefined: no limit. */
  readable?: TopicScope | undefined;
  /** `until`: the stream ends before the first event received after it (see RangeEnds), with `event: end`. */
  range?: StreamRange | undefined;
}

export interface StreamRange {
  /** As the client gave it, for the end frame. */
  until: string;
  /** RangeEnds.endOf for it: the seq the range ends before, once stored. */
  end(): Promise<number | undefined>;
}

/** What a subscription needs of the hub: joining once caught up. */
export interface LiveFeed {
  /**
   * Adds a caught-up subscription, whose last read found the store's visible end at `storeEnd`; false when
   * the feed has read past its cursor (it must read on by itself).
   */
  join(subscription: Subscription, storeEnd: number): boolean;
  leave(subscription: Subscription): void;
}

/** A stream's own store reads (catch-up). */
export interface StreamReads {
  /** A page showing the store as of `readAfter` (performance.now()) or later: it may be another stream's read. */
  page(query: StreamPageQuery, readAfter: number): Promise<StreamPage>;
  /** PurgeCheck.behind */
  purgedAfter(topics: readonly string[] | undefined, after: number, readable: ReadableTopics): Promise<PurgeHorizon | undefined>;
  /** EventReader.purgeHorizonsAbove */
  horizonsAbove(topics: readonly string[] | undefined, after: number, readable: ReadableTopics): Promise<number[]>;
}

export interface SubscriptionLimits {
  /** A page of a store read: at most this many events and bytes (a catch-up read; the shared feed's are smaller). */
  pageLimit: number;
  pageBytes: number;
  livePageBytes: number;
  /**
   * Bytes a subscriber may leave untaken (UNTAKEN_FACTOR times as many with a share of the read-ahead
   * budget): past it, a live one leaves the shared feed and reads at its own pace, and a catch-up write stops.
   */
  maxLiveBuffered: number;
  /** A subscriber that takes nothing for this long is disconnected (it resumes with Last-Event-ID). */
  stallTimeoutMs: number;
  /** A comment is sent when nothing else was for this long, so proxies and clients see a live connection. */
  keepAliveMs: number;
}

const READ_RETRY_MS = 250;
/** Catch-up writes go out in copies of about this size, so a stalled socket holds one of them, not a page. */
const CATCH_UP_CHUNK_BYTES = 16 * 1024;
/**
 * A stream may leave this many times maxLiveBuffered untaken while the ReadAheadBudget spares the bytes past
 * it. At maxLiveBuffered alone, 100 subscribers of a busy log kept leaving the shared feed at a client's
 * short pause, and catching up (write, wait for 'drain', write again) moved their bytes more slowly than the
 * feed: runs stayed ~1 s behind with no thread busy (performance.md).
 */
const UNTAKEN_FACTOR = 4;
const KEEP_ALIVE = Buffer.from(': keep-alive\n\n');

/**
 * One stream. It reads the store after its cursor, a page at a time and only as fast as its client takes
 * them (catch-up), until a read comes back empty; then it joins the shared feed, which hands it the new
 * events of each commit. When it falls behind there, it leaves and catches up by itself again. The cursor
 * only moves over events written to the socket (or not matching its topics), so nothing is skipped or
 * repeated. What it holds is its socket's buffer, past maxLiveBuffered only with a share of the server's
 * ReadAheadBudget, plus, from that budget, at most the rest of one page its client has not taken yet and
 * the next page, read while the client takes that one.
 *
 * Retention may purge events after the cursor, before the stream wrote them (a cursor from long ago, or a
 * slow subscriber overtaken): each catch-up read is followed by a purge check (on PostgreSQL, the horizon
 * read with the page), and a purge it has not told of yet (ToldPurges) gets `event: gap`, after which the
 * cursor moves to where every purged event of its topics lies behind (never past a retained one).
 */
export class Subscription {
  private closed = false;
  private wrote = false;
  private cursor: number;
  private readonly topics: readonly string[] | undefined;
  /** A purge is told once. */
  private readonly told: ToldPurges;
  /**
   * The next catch-up read's byte cap: twice what the client took of the last page, up to a full page. What
   * it does not take is read again, and a read costs what it reads (on PostgreSQL, framing included).
   */
  private readBytes: number;
  private readonly keepAlive: NodeJS.Timeout;
  /** Whether a frame of the shared feed is this stream's; undefined: every one is. */
  private readonly takes: ((topic: string) => boolean) | undefined;
  /** With `topics` undefined: the readable topics its reads keep to. */
  private readonly readable: ReadableTopics;
  /** The page being written, while its client has not taken all of it, and the budget it holds. */
  private kept: { page: StreamPage; share: BudgetShare } | undefined;
  /** The next page, read from `after` while the client takes the last one. */
  private ahead: { after: number; read: Promise<StreamPage | undefined>; share: BudgetShare } | undefined;
  private readonly range: StreamRange | undefined;
  /** Bytes past maxLiveBuffered its socket may hold untaken, from the budget, until it is back under it. */
  private overdraft: BudgetShare | undefined;
  /** The last page the purge check followed; weakly, since a stalled stream past the budget keeps no page. */
  private checked: WeakRef<StreamPage> | undefined;
  /**
   * Its pages show the store as of this time or later: its start, then the purge check of the last gap it
   * told, so that no page read before holds an event that purge took (the gap said it was not coming).
   */
  private readAfter = performance.now();

  constructor(
    private readonly sink: StreamSink,
    start: StreamStart,
    private readonly feed: LiveFeed,
    private readonly reads: StreamReads,
    private readonly limits: SubscriptionLimits,
    private readonly budget: ReadAheadBudget,
    private readonly log: Logger,
  ) {
    this.cursor = start.after;
    this.topics = start.topics;
    this.told = new ToldPurges(start.toldSum);
    this.range = start.range;
    this.readBytes = limits.pageBytes;
    const topicSet = start.topics && new Set(start.topics);
    const scope = start.readable;
    this.readable = start.topics === undefined ? scope?.filter : undefined;
    this.takes = topicSet ? (topic) => topicSet.has(topic) : this.readable && ((topic) => scope!.allows(topic));
    this.keepAlive = setInterval(() => {
      if (!this.wrote && !sink.needsDrain) sink.write(KEEP_ALIVE);
      this.wrote = false;
    }, limits.keepAliveMs);
    void this.catchUp();
  }

  /** The seq every matching event up to which has been written. */
  get position(): number {
    return this.cursor;
  }

  /** From the shared feed: a page read after its cursor. False when this subscriber left it (it fell behind). */
  deliver(page: StreamPage): boolean {
    // A range's stream reads by itself: only a read of the range's end after its page tells where the range stops in it.
    if (this.range) {
      void this.catchUp();
      return false;
    }
    const frames = this.framesOf(page);
    this.cursor = Math.max(this.cursor, page.end);
    if (frames.byteLength > 0) this.send(frames);
    if (this.untakenWithinBound()) return true;
    void this.catchUp();
    return false;
  }

  /** From the shared feed: a purge may have taken events it has not read yet; it reads by itself, which tells of it. */
  overtaken(): void {
    void this.catchUp();
  }

  /** Ends the stream (the server is stopping); a client that has not taken all of it is cut off. */
  stop(): void {
    this.close();
    if (this.sink.bufferedBytes > 0) this.sink.destroy();
    else this.sink.end();
  }

  /** Stops it: the socket closed, or the server is stopping. */
  close(): void {
    this.closed = true;
    clearInterval(this.keepAlive);
    this.feed.leave(this);
    this.dropKept();
    this.dropAhead();
    this.dropOverdraft();
  }

  private async catchUp(): Promise<void> {
    while (!this.closed) {
      if (this.sink.needsDrain && !(await this.sink.drained(this.limits.stallTimeoutMs))) {
        this.sink.destroy();
        return;
      }
      this.dropOverdraft();
      let page: StreamPage;
      let untold: { horizon: PurgeHorizon; above: number[] } | undefined;
      let rangeEnd: number | undefined;
      let checkedAt = 0;
      try {
        page = await this.nextPage();
        checkedAt = performance.now();
        // After the page, even one read ahead: purges only advance, so this sees every one it missed. Once
        // per page: the rest of a page being written was read before the purges it missed, which the check
        // after the next page tells if the cursor has not passed them by then (a check at every socket drain
        // was a store round trip per 64 KiB).
        untold = this.checked?.deref() === page ? undefined : await this.untoldPurge(page);
        this.checked = new WeakRef(page);
        // After the page: if it holds an event received after `until`, this finds it (or an earlier one).
        rangeEnd = await this.range?.end();
      } catch (error) {
        this.log.warn({ err: error }, 'a stream read failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, READ_RETRY_MS));
        continue;
      }
      if (this.closed) return;
      if (untold) {
        this.gap(untold.horizon, untold.above);
        // The page, and one read ahead, were read before the check: they may hold events of the purge just told.
        this.readAfter = checkedAt;
        this.dropKept();
        this.dropAhead();
        continue;
      }
      if (rangeEnd !== undefined) {
        const cut = streamPageBefore(page, rangeEnd);
        // A kept page is kept cut: the budget it holds is its own, not one more share.
        if (this.kept?.page === page) this.kept.page = cut;
        page = cut;
        // A shared page may begin before the cursor: none of the range may be left after it.
        if (page.seqs.length === 0 || page.end <= this.cursor) {
          this.finish(rangeEnd);
          return;
        }
      }
      if (page.seqs.length > 0) {
        // The next page is read while the client takes this one, not only once all of it is in the socket;
        // its read goes out to the store first (one turn of the event loop), as a store may build this
        // page's frames only as it is written (PostgreSQL: the store then reads while this thread builds).
        this.readAhead(page.end);
        await new Promise(setImmediate);
        if (this.closed) return;
        this.sendWhileTaken(page);
        continue;
      }
      this.dropKept();
      this.cursor = Math.max(this.cursor, page.end);
      if (this.feed.join(this, page.end)) return;
    }
  }

  /** The rest of the page being written, else the page read ahead (when read from the cursor), else a read now. */
  private async nextPage(): Promise<StreamPage> {
    if (this.kept) return this.kept.page;
    const ahead = this.ahead;
    this.ahead = undefined;
    const page = ahead && (await ahead.read);
    if (page && ahead.after === this.cursor && !this.closed) {
      this.kept = { page, share: ahead.share };
      return page;
    }
    ahead?.share.release();
    return this.read(this.cursor, this.readBytes);
  }

  /** With the purge horizon where the store reads it in the page's snapshot: the check after the page is then no read. */
  private read(after: number, maxBytes: number): Promise<StreamPage> {
    return this.reads.page({ topics: this.topics, after, limit: this.limits.pageLimit, maxBytes, readable: this.readable, purgeHorizon: true }, this.readAfter);
  }

  /** Reads the page after `after` while the client takes this one, unless one is read already or the budget spares none. */
  private readAhead(after: number): void {
    if (this.ahead) return;
    const share = this.budget.take(this.limits.pageBytes);
    if (!share) return;
    // A failed read is read again, and logged, when the page is wanted. The share shrinks to the page's
    // size once it is written (sendWhileTaken): a store may build a page's frames only then.
    const read = this.read(after, this.limits.pageBytes).catch(() => undefined);
    this.ahead = { after, read, share };
  }

  private dropKept(): void {
    this.kept?.share.release();
    this.kept = undefined;
  }

  private dropAhead(): void {
    this.ahead?.share.release();
    this.ahead = undefined;
  }

  private dropOverdraft(): void {
    this.overdraft?.release();
    this.overdraft = undefined;
  }

  /**
   * Whether what its socket leaves untaken is within bound: maxLiveBuffered, or UNTAKEN_FACTOR times it on a
   * share of the budget, taken only once past maxLiveBuffered and given back once under it again (or drained).
   */
  private untakenWithinBound(): boolean {
    const untaken = this.sink.bufferedBytes;
    if (untaken <= this.limits.maxLiveBuffered) {
      this.dropOverdraft();
      return true;
    }
    const extra = (UNTAKEN_FACTOR - 1) * this.limits.maxLiveBuffered;
    this.overdraft ??= this.budget.take(extra);
    return this.overdraft !== undefined && untaken <= this.limits.maxLiveBuffered + extra;
  }

  /** Every event of its range was sent: says so, and ends the stream once the client has taken it. */
  private finish(rangeEnd: number): void {
    this.send(endFrame(this.range!.until, rangeEnd - 1));
    this.close();
    this.sink.end();
  }

  /**
   * A purge after the cursor it has not told of, after reading `page`: the horizon of its topics and each
   * one's above the cursor.
   */
  private async untoldPurge(page: StreamPage): Promise<{ horizon: PurgeHorizon; above: number[] } | undefined> {
    const horizon = page.purgeHorizon
      ? behind(page.purgeHorizon, this.cursor)
      : await this.reads.purgedAfter(this.topics, this.cursor, this.readable);
    if (!horizon) {
      this.told.clear();
      return undefined;
    }
    // Read after the horizon: a purge in between is told too, and resuming from the older `min` skips nothing.
    const above = await this.reads.horizonsAbove(this.topics, this.cursor, this.readable);
    return this.told.untold(above, this.cursor) ? { horizon, above } : undefined;
  }

  /**
   * Tells of events purged after the cursor and moves it past every purged event of its topics: to the
   * lowest of their horizons, or where it is when that lies behind it.
   */
  private gap({ min }: PurgeHorizon, above: readonly number[]): void {
    const resumedAfter = Math.max(this.cursor, min);
    this.send(gapFrame(this.cursor, resumedAfter, this.told.tell(above, resumedAfter)));
    this.cursor = resumedAfter;
  }

  /**
   * Writes the page's frames after the cursor in chunks until the bytes the socket has not taken pass its
   * bound (untakenWithinBound), moving the cursor over what was written. The rest is kept for when the client
   * has taken them, if the budget spares it, else read again then, so a stalled subscriber beyond the budget
   * holds no page. The next page is read ahead as this one starts (again once it is written whole, if the
   * budget could not spare it then). (A page another stream read may begin before the cursor.)
   */
  private sendWhileTaken(page: StreamPage): void {
    const { seqs, ends, frames } = page;
    if (this.kept?.page === page) this.kept.share.shrink(frames.byteLength);
    const first = this.firstAfterCursor(seqs);
    const start = first === 0 ? 0 : ends[first - 1]!;
    let from = start;
    for (let i = first; i < seqs.length && this.untakenWithinBound(); i++) {
      if (i < seqs.length - 1 && ends[i]! - from < CATCH_UP_CHUNK_BYTES) continue;
      this.send(Buffer.from(frames.subarray(from, ends[i]!)));
      this.cursor = seqs[i]!;
      from = ends[i]!;
    }
    if (from === frames.byteLength) {
      this.readBytes = Math.min(this.limits.pageBytes, 2 * this.readBytes);
      this.dropKept();
      this.readAhead(this.cursor);
      return;
    }
    if (this.kept?.page === page) return;
    const share = this.budget.take(frames.byteLength);
    if (share) this.kept = { page, share };
    // Read again once taken: only about as much as the client took of this one.
    else this.readBytes = Math.min(this.limits.pageBytes, Math.max(CATCH_UP_CHUNK_BYTES, 2 * (from - start)));
  }

  private send(frames: Uint8Array): void {
    this.sink.write(frames);
    this.wrote = true;
  }

  /** The frames of `page` after the cursor and of its topics, as one buffer: the page itself when all are. */
  private framesOf(page: StreamPage): Uint8Array {
    const { seqs, ends, topics, frames } = page;
    const first = this.firstAfterCursor(seqs);
    const start = first === 0 ? 0 : ends[first - 1]!;
    if (this.takes === undefined) return frames.subarray(start);
    const slices: Uint8Array[] = [];
    for (let i = first; i < seqs.length; i++) {
      if (this.takes(topics[i]!)) slices.push(frames.subarray(i === 0 ? 0 : ends[i - 1]!, ends[i]!));
    }
    return slices.length === 1 ? slices[0]! : Buffer.concat(slices);
  }

  /** The index of the first of a page's seqs past the cursor. */
  private firstAfterCursor(seqs: Float64Array): number {
    let first = 0;
    while (first < seqs.length && seqs[first]! <= this.cursor) first++;
    return first;
  }
}
