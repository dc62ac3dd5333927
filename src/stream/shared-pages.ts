import type { StreamPage, StreamPageQuery } from '../store/store.js';
import type { BudgetShare, ReadAheadBudget } from './read-ahead.js';

/** Pages read for catch-up streams: from the store, or taken from another stream's read. */
export interface CatchUpPageCounts {
  readonly store: number;
  readonly shared: number;
}

interface Kept {
  key: string;
  after: number;
  /** The largest byte cap it answers: its own. */
  maxBytes: number;
  /** When it was asked for (performance.now()): it shows the store as of then or later. */
  askedAt: number;
  page: StreamPage;
  share: BudgetShare;
  expiry: NodeJS.Timeout;
}

interface InFlight {
  maxBytes: number;
  askedAt: number;
  read: Promise<StreamPage>;
}

/**
 * How long a page is kept for streams behind it: streams that fell behind together read within moments of
 * each other; past that, the budget is theirs again.
 */
const KEEP_MS = 2_000;

/**
 * Catch-up reads of streams that want the same rows, read once. Subscribers that fall behind together (a
 * burst past the shared feed's allowance, a crowd reconnecting with one Last-Event-ID) each catch up by
 * itself; without this, 100 of them read the same pages 100 times, two at a time, and stay behind for good.
 *
 * A read for a stream's topics after its cursor, which must show the store as of `readAfter` or later (the
 * stream's start, or the purge check of the last gap it told), is answered by, in turn:
 * - a page kept from a recent read of the same topics that holds events after the cursor. A non-empty page
 *   holds every matching event in `(its after, its end]`, so its frames after the cursor are what a read now
 *   would return up to that end, only read earlier, yet after `readAfter`: the stream reads on from the end,
 *   and a purge the page missed is told by the check after it (subscription.ts);
 * - a read in flight for the same topics from the same cursor, asked for after `readAfter`;
 * - a read of its own, which the next ones may share.
 * Only a read with a byte cap at least the asker's answers it: a smaller one would cost a fast stream more
 * reads. A larger one is no harm: a stream writes what its socket takes and keeps or reads again the rest.
 *
 * Kept pages hold shares of the streams' ReadAheadBudget (at most `maxKeptBytes` of it, oldest dropped
 * first, none longer than KEEP_MS), so what catch-up pages hold stays within STREAM_READ_AHEAD_BYTES
 * however many streams there are.
 */
export class SharedPages {
  private readonly kept: Kept[] = [];
  private keptBytes = 0;
  private readonly inFlight = new Map<string, InFlight>();
  private readonly counts = { store: 0, shared: 0 };

  constructor(
    private readonly readPage: (query: StreamPageQuery) => Promise<StreamPage>,
    private readonly budget: ReadAheadBudget,
    private readonly maxKeptBytes: number,
  ) {}

  get pages(): CatchUpPageCounts {
    return this.counts;
  }

  async page(query: StreamPageQuery, readAfter: number): Promise<StreamPage> {
    const answers = (read: { maxBytes: number; askedAt: number }) => read.maxBytes >= query.maxBytes && read.askedAt >= readAfter;
    const key = topicsKey(query);
    const kept = this.kept.find((page) => page.key === key && answers(page) && holdsAfter(page, query.after));
    if (kept) {
      this.counts.shared++;
      return kept.page;
    }
    const readKey = `${query.after} ${key}`;
    const inFlight = this.inFlight.get(readKey);
    if (inFlight && answers(inFlight)) {
      this.counts.shared++;
      return inFlight.read;
    }
    this.counts.store++;
    const askedAt = performance.now();
    const read = this.readPage(query);
    this.inFlight.set(readKey, { maxBytes: query.maxBytes, askedAt, read });
    try {
      const page = await read;
      this.keep({ key, after: query.after, maxBytes: query.maxBytes, askedAt }, page);
      return page;
    } finally {
      if (this.inFlight.get(readKey)?.read === read) this.inFlight.delete(readKey);
    }
  }

  /**
   * Keeps a page with events for the streams behind it, if the budget spares its byte cap (a PostgreSQL page
   * builds its frames only when first written, so their exact size is not known yet).
   */
  private keep(read: Omit<Kept, 'page' | 'share' | 'expiry'>, page: StreamPage): void {
    if (page.seqs.length === 0 || read.maxBytes > this.maxKeptBytes) return;
    while (this.keptBytes + read.maxBytes > this.maxKeptBytes) this.drop(this.kept[0]!);
    const share = this.budget.take(read.maxBytes);
    if (!share) return;
    const kept: Kept = { ...read, page, share, expiry: setTimeout(() => this.drop(kept), KEEP_MS).unref() };
    this.kept.push(kept);
    this.keptBytes += read.maxBytes;
  }

  /** Gives every kept page back (the server is stopping). */
  close(): void {
    while (this.kept.length > 0) this.drop(this.kept[0]!);
  }

  private drop(kept: Kept): void {
    clearTimeout(kept.expiry);
    this.kept.splice(this.kept.indexOf(kept), 1);
    this.keptBytes -= kept.maxBytes;
    kept.share.release();
  }
}

/** The reads whose pages hold the same events: same topics, readable scope, count limit and horizon. */
function topicsKey({ topics, readable, limit, purgeHorizon }: StreamPageQuery): string {
  return JSON.stringify([topics ?? null, readable ?? null, limit, purgeHorizon ?? false]);
}

/** Whether a page read from `after` holds events after `cursor` and every matching one in between. */
function holdsAfter(kept: Kept, cursor: number): boolean {
  return kept.after <= cursor && cursor < kept.page.end;
}
