import type { Logger } from '../logger.js';
import type { PurgeCheck } from './purge-check.js';
import { ReadGate } from '../store/read-gate.js';
import type { EventReader, StreamPage } from '../store/store.js';
import type { CommitSignal } from './commit-signal.js';
import { ReadAheadBudget } from './read-ahead.js';
import { SharedPages, type CatchUpPageCounts } from './shared-pages.js';
import { Subscription, type LiveFeed, type StreamReads, type StreamSink, type StreamStart, type SubscriptionLimits } from './subscription.js';

/** How soon to look again when PostgreSQL has committed rows not yet readable (above the commit horizon). */
const PENDING_RETRY_MS = 10;
const READ_RETRY_MS = 250;
/**
 * Catch-up reads of single subscribers run this many at a time, the rest wait their turn, so that a crowd
 * of subscribers behind (reconnecting, or slow ones topping up their sockets) leaves the store's readers
 * to /events and the shared feed.
 */
const CATCH_UP_SLOTS = 2;
const CATCH_UP_MAX_WAIT_MS = 60_000;
/** Catch-up pages kept for streams behind the one that read them: this many pages' bytes at most. */
const SHARED_PAGES = 4;

/**
 * The subscribers of one server, and the shared live feed of the caught-up ones: at each commit wake-up it
 * reads the new events after its own cursor once, for every topic, and hands each member the frames of its
 * topics, however many members there are. A wake-up that finds nothing new costs one read; on PostgreSQL a
 * wake-up may come before the rows pass the commit horizon, so while the store says rows are pending it
 * looks again shortly, which is the only timed read.
 */
export class SubscriberHub implements LiveFeed {
  private readonly subscriptions = new Set<Subscription>();
  private readonly members = new Set<Subscription>();
  private cursor = 0;
  private reading = false;
  private wokenWhileReading = false;
  private retry: NodeJS.Timeout | undefined;
  private readonly stopListening: () => void;
  private readonly catchUpGate: ReadGate;
  /** The catch-up reads of single subscribers: shared where they want the same rows, through the gate. */
  private readonly reads: StreamReads;
  private readonly sharedPages: SharedPages;
  /** What catch-up pages kept or read ahead hold, across every stream. */
  readonly readAhead: ReadAheadBudget;

  constructor(
    private readonly reader: EventReader,
    private readonly purges: PurgeCheck,
    commits: CommitSignal,
    private readonly limits: SubscriptionLimits & { maxSubscribers: number; readAheadBytes: number },
    private readonly log: Logger,
  ) {
    this.stopListening = commits.listen(() => this.wake());
    this.catchUpGate = new ReadGate({ slots: CATCH_UP_SLOTS, maxQueued: limits.maxSubscribers, maxWaitMs: CATCH_UP_MAX_WAIT_MS });
    this.readAhead = new ReadAheadBudget(limits.readAheadBytes);
    const gated = this.catchUpGate;
    const sharedPages = new SharedPages((query) => gated.run(() => reader.streamPage(query)), this.readAhead, SHARED_PAGES * limits.pageBytes);
    this.sharedPages = sharedPages;
    this.reads = {
      page: (query, readAfter) => sharedPages.page(query, readAfter),
      purgedAfter: (topics, after, readable) => gated.run(() => purges.behind(topics, after, readable)),
      horizonsAbove: (topics, after, readable) => gated.run(() => reader.purgeHorizonsAbove(topics, after, readable)),
    };
  }

  /** Open streams, caught up or not. */
  get size(): number {
    return this.subscriptions.size;
  }

  /** Catch-up pages read from the store, and taken from another stream's read. */
  get catchUpPages(): CatchUpPageCounts {
    return this.sharedPages.pages;
  }

  /** Starts a stream on `sink`; it ends when `closed` fires (the socket closed). */
  subscribe(sink: StreamSink, start: StreamStart, onClosed: (listener: () => void) => void): void {
    const subscription = new Subscription(sink, start, this, this.reads, this.limits, this.readAhead, this.log);
    this.subscriptions.add(subscription);
    onClosed(() => {
      subscription.close();
      this.subscriptions.delete(subscription);
    });
  }

  join(subscription: Subscription, storeEnd: number): boolean {
    const idle = this.members.size === 0 && !this.reading;
    // A read in flight or members served from this cursor: a subscriber behind it would miss what lies between.
    if (!idle && subscription.position < this.cursor) return false;
    // Never past the store's end: a subscriber ahead of it (a Last-Event-ID from elsewhere) waits as a member;
    // taking the feed there would leave every other subscriber behind it, reading by itself again and again.
    if (idle) this.cursor = Math.min(subscription.position, storeEnd);
    this.members.add(subscription);
    // A commit between its last read and now woke nobody on its behalf.
    this.wake();
    return true;
  }

  leave(subscription: Subscription): void {
    this.members.delete(subscription);
  }

  /** Stops every stream (server shutdown) and the feed. */
  close(): void {
    this.stopListening();
    clearTimeout(this.retry);
    for (const subscription of this.subscriptions) subscription.stop();
    this.subscriptions.clear();
    this.sharedPages.close();
  }

  private wake(): void {
    if (this.reading) {
      this.wokenWhileReading = true;
      return;
    }
    clearTimeout(this.retry);
    this.retry = undefined;
    void this.readNew();
  }

  private async readNew(): Promise<void> {
    this.reading = true;
    try {
      do {
        this.wokenWhileReading = false;
        await this.readToEnd();
      } while (this.wokenWhileReading && this.members.size > 0);
    } finally {
      this.reading = false;
    }
  }

  /**
   * Reads pages after the cursor until one is empty, handing each to the members. When a purge took events
   * after the cursor before this read (retention by count can overtake the feed), the members do not know
   * which of their topics lost what: each leaves and reads by itself, which tells it of its gap.
   */
  private async readToEnd(): Promise<void> {
    while (this.members.size > 0) {
      let page: StreamPage;
      try {
        page = await this.reader.streamPage({
          topics: undefined, after: this.cursor, limit: this.limits.pageLimit, maxBytes: this.limits.livePageBytes,
        });
        if (await this.purges.behind(undefined, this.cursor)) {
          // Past this page, so that the purge sends no member that rejoins meanwhile away again.
          this.cursor = Math.max(this.cursor, page.end);
          for (const member of this.members) member.overtaken();
          this.members.clear();
          return;
        }
      } catch (error) {
        this.log.warn({ err: error }, 'the subscribers\' read failed; retrying');
        this.retryIn(READ_RETRY_MS);
        return;
      }
      this.cursor = Math.max(this.cursor, page.end);
      if (page.seqs.length === 0) {
        if (page.pending) this.retryIn(PENDING_RETRY_MS);
        return;
      }
      for (const member of this.members) {
        if (!member.deliver(page)) this.members.delete(member);
      }
    }
  }

  private retryIn(ms: number): void {
    this.retry ??= setTimeout(() => {
      this.retry = undefined;
      this.wake();
    }, ms);
  }
}
