import type { ConsumerPage } from '../store/consumers.js';
import { ReadGate } from '../store/read-gate.js';
import type { EventReader } from '../store/store.js';
import type { CommitSignal, TouchedTopics } from './commit-signal.js';

/**
 * Reads of long-polls run this many at a time and the rest queue in arrival order, so that a crowd of
 * long-polls woken together never floods the store's reader queue (whose overflow is 503 READERS_BUSY):
 * they take turns, leaving the reader's places to /events and streams.
 */
const LONG_POLL_READ_SLOTS = 2;
/** Long-poll reads that may queue; one more is refused (READERS_BUSY), as is one that waited this long. */
const LONG_POLL_MAX_QUEUED = 10_000;
const LONG_POLL_MAX_QUEUE_MS = 30_000;
/**
 * After a wake-up that found nothing, how soon to look again, doubling up to the last: on PostgreSQL the
 * commit may not be readable yet, as an older transaction (of any database of the server) holds the commit
 * horizon back, and its end wakes nobody when it stored nothing of these topics.
 */
const FIRST_RETRY_MS = 10;
const LAST_RETRY_MS = 1_280;

/** A consumer's page; `final` when it ends a time range (nothing more will come for that range). */
export type PolledPage = ConsumerPage & { final?: boolean };
/** Reads a consumer's page; undefined: no such consumer. */
export type PageRead = () => Promise<PolledPage | undefined>;

/** Durable consumers' long-polls (`wait_ms`): each waits for commits of its own topics only. */
export class ConsumerLongPolls {
  private readonly gate = new ReadGate({
    slots: LONG_POLL_READ_SLOTS, maxQueued: LONG_POLL_MAX_QUEUED, maxWaitMs: LONG_POLL_MAX_QUEUE_MS,
  });

  constructor(private readonly reader: Pick<EventReader, 'consumerPage'>, private readonly commits: CommitSignal) {}

  /** A read for a poll: one that may wait (`waitMs` > 0) takes its turn behind the other long-polls' reads. */
  read<T>(waitMs: number, read: () => Promise<T>): Promise<T> {
    return waitMs > 0 ? this.gate.run(read) : read();
  }

  /**
   * The consumer's next page (undefined: no such consumer); when it is empty, waits up to `waitMs` for a
   * commit of its topics and reads again, until `ended` fires. The wait starts listening before each read,
   * so a commit landing between the read and the wait still wakes it; a wake-up only means "read again".
   * `read` reads the page (a time range's: see RangeEnds.read); a page it marks `final` is answered at once.
   */
  async poll(
    name: string, limit: number, waitMs: number, ended: AbortSignal,
    read: PageRead = () => this.reader.consumerPage(name, limit),
  ): Promise<PolledPage | undefined> {
    const deadline = performance.now() + waitMs;
    // The consumer's topics, known from its first page; until then (and for an every-topic consumer) any commit wakes it.
    let known = false;
    let topics: ReadonlySet<string> | null = null;
    const wants = (touched: TouchedTopics) => touched === undefined || topics === null || touched.some((topic) => topics!.has(topic));
    let retryMs = 0;
    for (;;) {
      // A wake-up before the topics were known may be for any topic: finding nothing after it is no sign of a lagging horizon.
      const filtered = known;
      const remaining = deadline - performance.now();
      const stop = new AbortController();
      const woken = remaining > 0 && !ended.aborted
        ? this.commits.next(retryMs > 0 ? Math.min(retryMs, remaining) : remaining, AbortSignal.any([stop.signal, ended]), wants)
        : undefined;
      let waiting = false;
      try {
        const page = await this.read(waitMs, read);
        if (!page || page.count > 0 || !woken || page.final) return page;
        topics = page.topics && new Set(page.topics);
        known = true;
        waiting = true;
      } finally {
        // Answered or failed: the wait's listener and timer go now, not when wait_ms runs out.
        if (!waiting) stop.abort();
      }
      const wasWoken = await woken;
      retryMs = wasWoken && filtered ? FIRST_RETRY_MS : retryMs > 0 && retryMs < LAST_RETRY_MS ? retryMs * 2 : 0;
    }
  }
}
