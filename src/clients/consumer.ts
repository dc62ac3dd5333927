import { acceptEncoding, authHeader, baseUrl, rangeTime, refusal, withRetries, type Connection, type ReadEncoding, type Transient } from './request.js';
import type { StoredEvent } from './subscriber.js';

export interface ConsumeOptions extends Connection, ReadEncoding {
  /** The durable consumer's name (1–128 of [A-Za-z0-9._-]). */
  consumer: string;
  /** Create it first (idempotent: the same definition again is fine; another is 409 CONSUMER_CONFLICT). */
  create?: { topics?: string[]; start?: 'earliest' | 'latest' | number };
  /** Events per page (default 1000, at most 10,000). */
  limit?: number;
  /** Long-poll: how long the server waits for an event when there is none, in ms (default 10,000, at most 30,000). */
  waitMs?: number;
  /** Skip to the first event received at or after this time (a Date, or an RFC 3339 string). */
  since?: string | Date | undefined;
  /**
   * Stop before the first event received after this time: the iteration ends once every event of the
   * range is committed (the server's `"end": true`).
   */
  until?: string | Date | undefined;
  /** Ends the iteration. */
  signal?: AbortSignal | undefined;
  /** A request failed in a way waiting may cure; it is retried after `delayMs`. */
  onRetry?: (reason: string, delayMs: number) => void;
}

/** A page of a consumer's events; `commit(page.next)` acknowledges all of them. */
export interface ConsumerPage {
  events: StoredEvent[];
  next: number;
  /** With `until` only: every event of the range up to its end is committed. */
  end?: boolean;
  /** Retention purged events of the consumer's topics after its position, up to this seq. */
  purgedThrough?: number;
}

/**
 * A durable consumer: a cursor the server keeps, surviving restarts of either side. Iterating yields pages
 * of the events after its committed position (long-polling when there are none); `commit(seq)` moves the
 * position. Until a commit, the next page holds the same events again: delivery is at-least-once, and
 * committing is the application's statement that it has processed them. Network errors, 5xx and 429 are
 * retried with backoff (Retry-After honoured); a 4xx but 429 throws an AggregatorError.
 */
export class DurableConsumer implements AsyncIterable<ConsumerPage> {
  private readonly url: string;
  private readonly headers: Record<string, string>;

  constructor(private readonly options: ConsumeOptions) {
    this.url = `${baseUrl(options.url)}/consumers/${encodeURIComponent(options.consumer)}`;
    this.headers = { ...acceptEncoding(options), ...authHeader(options.token) };
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ConsumerPage, void, undefined> {
    const { create, signal } = this.options;
    if (create) await this.request('PUT', '', { topics: create.topics ?? [], start: create.start ?? 'earliest' });
    const params = new URLSearchParams({ limit: String(this.options.limit ?? 1000), wait_ms: String(this.options.waitMs ?? 10_000) });
    if (this.options.since !== undefined) params.set('since', rangeTime('since', this.options.since));
    if (this.options.until !== undefined) params.set('until', rangeTime('until', this.options.until));
    const query = `/events?${params}`;
    while (!signal?.aborted) {
      let page: ConsumerPage;
      try {
        page = await this.request<ConsumerPage>('GET', query);
      } catch (error) {
        if (signal?.aborted) return;
        throw error;
      }
      if (page.events.length > 0) yield page;
      if (page.end) return;
    }
  }

  /** Stores the position durably (the server answers once it is); `rewind` allows moving it back. */
  async commit(seq: number, { rewind = false } = {}): Promise<void> {
    await this.request('POST', `/commit${rewind ? '?rewind=true' : ''}`, { seq });
  }

  private request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return withRetries(async () => {
      const res = await fetch(`${this.url}${path}`, {
        method,
        headers: { ...this.headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        ...(this.options.signal ? { signal: this.options.signal } : {}),
      });
      if (!res.ok) throw await refusal(res);
      const answer = (await res.json()) as T;
      const purged = res.headers.get('x-purged-through');
      return purged === null ? answer : { ...answer, purgedThrough: Number(purged) };
    }, {
      signal: this.options.signal,
      onRetry: (error: Transient, delayMs) => this.options.onRetry?.(error.message, delayMs),
    });
  }
}

/** Iterates a durable consumer's events in pages, committing explicitly: see DurableConsumer. */
export function consume(options: ConsumeOptions): DurableConsumer {
  return new DurableConsumer(options);
}
