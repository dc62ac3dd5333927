import type { Logger } from '../logger.js';
import { gapFrame } from '../store/sse-frames.js';
import type { PurgeHorizon, StreamPage, StreamPageQuery } from '../store/store.js';

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

/** Where a stream starts: after this seq, over these topics (undefined: every topic). */
export interface StreamStart {
  after: number;
  topics: readonly string[] | undefined;
}

/** What a subscription needs of the hub: joining once caught up. */
export interface LiveFeed {
  /** Adds a caught-up subscription; false when the feed has read past its cursor (it must read on by itself). */
  join(subscription: Subscription): boolean;
  leave(subscription: Subscription): void;
}

export interface SubscriptionLimits {
  /** A page of a store read: at most this many events and bytes (a catch-up read; the shared feed's are smaller). */
  pageLimit: number;
  pageBytes: number;
  livePageBytes: number;
  /**
   * Bytes a subscriber may leave untaken: past it, a live one leaves the shared feed and reads at its own
   * pace, and a catch-up write stops.
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
const KEEP_ALIVE = Buffer.from(': keep-alive\n\n');

/**
 * One stream. It reads the store after its cursor, a page at a time and only as fast as its client takes
 * them (catch-up), until a read comes back empty; then it joins the shared feed, which hands it the new
 * events of each commit. When it falls behind there, it leaves and catches up by itself again. The cursor
 * only moves over events written to the socket (or not matching its topics), so nothing is skipped or
 * repeated; what it holds is its socket's buffer plus one page.
 *
 * Retention may purge events after the cursor, before the stream wrote them (a cursor from long ago, or a
 * slow subscriber overtaken): each catch-up read is followed by a purge check, and a purge it has not told
 * of yet gets `event: gap`, after which the cursor moves to where every purged event of its topics lies
 * behind (never past a retained one).
 */
export class Subscription {
  private closed = false;
  private wrote = false;
  /** The highest purged seq it has told of in a gap: a purge is told once. */
  private toldPurgedThrough = 0;
  private readonly keepAlive: NodeJS.Timeout;
  private readonly topicSet: ReadonlySet<string> | undefined;

  constructor(
    private readonly sink: StreamSink,
    private cursor: number,
    private readonly topics: readonly string[] | undefined,
    private readonly feed: LiveFeed,
    /** A store read of its own (catch-up). */
    private readonly read: (query: StreamPageQuery) => Promise<StreamPage>,
    /** A purge check of its own (PurgeCheck.behind). */
    private readonly purgedAfter: (topics: readonly string[] | undefined, after: number) => Promise<PurgeHorizon | undefined>,
    private readonly limits: SubscriptionLimits,
    private readonly log: Logger,
  ) {
    this.topicSet = topics && new Set(topics);
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
    const frames = this.framesOf(page);
    this.cursor = Math.max(this.cursor, page.end);
    if (frames.byteLength > 0) this.send(frames);
    if (this.sink.bufferedBytes <= this.limits.maxLiveBuffered) return true;
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
  }

  private async catchUp(): Promise<void> {
    while (!this.closed) {
      if (this.sink.needsDrain && !(await this.sink.drained(this.limits.stallTimeoutMs))) {
        this.sink.destroy();
        return;
      }
      let page: StreamPage;
      let purged: PurgeHorizon | undefined;
      try {
        page = await this.read({
          topics: this.topics, after: this.cursor, limit: this.limits.pageLimit, maxBytes: this.limits.pageBytes,
        });
        purged = await this.purgedAfter(this.topics, Math.max(this.cursor, this.toldPurgedThrough));
      } catch (error) {
        this.log.warn({ err: error }, 'a stream read failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, READ_RETRY_MS));
        continue;
      }
      if (this.closed) return;
      if (purged) this.gap(purged);
      if (page.seqs.length > 0) {
        this.sendWhileTaken(page);
        continue;
      }
      this.cursor = Math.max(this.cursor, page.end);
      if (this.feed.join(this)) return;
    }
  }

  /**
   * Tells of events purged after the cursor and moves it past every purged event of its topics: to the
   * lowest of their horizons, or where it is when that lies behind it.
   */
  private gap({ max, min }: PurgeHorizon): void {
    const resumedAfter = Math.max(this.cursor, min);
    this.send(gapFrame(this.cursor, resumedAfter));
    this.cursor = resumedAfter;
    this.toldPurgedThrough = max;
  }

  /**
   * Writes the page's frames after the cursor in chunks until the bytes the socket has not taken pass the
   * live bound, moving the cursor over what was written: the rest is read again once the client has taken
   * them, so a stalled subscriber holds no page. (A gap may have moved the cursor into the page: the events
   * it passed over were purged since the read.)
   */
  private sendWhileTaken({ seqs, ends, frames }: StreamPage): void {
    const first = this.firstAfterCursor(seqs);
    let from = first === 0 ? 0 : ends[first - 1]!;
    for (let i = first; i < seqs.length && this.sink.bufferedBytes <= this.limits.maxLiveBuffered; i++) {
      if (i < seqs.length - 1 && ends[i]! - from < CATCH_UP_CHUNK_BYTES) continue;
      this.send(Buffer.from(frames.subarray(from, ends[i]!)));
      this.cursor = seqs[i]!;
      from = ends[i]!;
    }
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
    if (this.topicSet === undefined) return frames.subarray(start);
    const slices: Uint8Array[] = [];
    for (let i = first; i < seqs.length; i++) {
      if (this.topicSet.has(topics[i]!)) slices.push(frames.subarray(i === 0 ? 0 : ends[i - 1]!, ends[i]!));
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
