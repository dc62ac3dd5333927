import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { PublishedEvent } from '../event.js';
import { AggregatorError, PublishError } from './errors.js';
import { authHeader, baseUrl, refusal, Transient, withRetries, type Connection } from './request.js';

export interface PublisherOptions extends Omit<Connection, 'url'> {
  /** The aggregator's base URL; several (replicas of one store) take the requests in turn. */
  url: string | string[];
  /** Events per request: a batch is sent once it holds this many… (default 500) */
  batchSize?: number;
  /** …or once its first event has waited this long, in ms (default 20). */
  lingerMs?: number;
  /** Events published and not yet acknowledged (or failed), at most; `publish()` waits beyond (default 10,000). */
  maxBufferedEvents?: number;
  /** Requests in flight at once (default 4). Batches may commit out of order when above 1. */
  concurrency?: number;
  /** Send bodies with Content-Encoding: gzip. */
  gzip?: boolean;
  /** Per request, in ms (default 10,000); a timed-out request is retried. */
  timeoutMs?: number;
  /** Tries per batch before its events fail with RETRIES_EXHAUSTED (default: no limit). */
  maxAttempts?: number;
  /** The longest wait between two tries of a batch, in ms (default 10,000), unless Retry-After asks for longer. */
  maxRetryDelayMs?: number;
  /** Each failure, as it happens (`flush()` also rejects with the first one). */
  onError?: (error: PublishError) => void;
}

export interface PublisherStats {
  /** Events taken by publish(). */
  published: number;
  /** Events acknowledged: committed by the server (200), as new or as duplicates. */
  acked: number;
  unique: number;
  duplicates: number;
  /** Events that failed (refused, or retries spent): each reported once as a PublishError. */
  failed: number;
  requests: number;
  retries: number;
  /** Answers by HTTP status. */
  statusCodes: Record<string, number>;
}

interface PublishAnswer {
  unique: number;
  duplicates: number;
}

const gzipAsync = promisify(gzip);
const ACCEPTED = Promise.resolve();
/** The server's answers that a smaller request would pass: the batch is split in two and each half sent. */
const TOO_LARGE = new Set(['BODY_TOO_LARGE', 'TOO_MANY_EVENTS', 'REQUEST_TOO_LARGE']);

/**
 * At-least-once publishing with the aggregator's dedup making it exactly-once in effect: events are batched
 * (by size and by time), each batch is retried on network errors, timeouts, 5xx and 429 with full-jitter
 * backoff that honours Retry-After, and a retry of events the server did store is answered as duplicates.
 * The buffer is bounded: `publish()` resolves once the event is buffered, which waits while
 * `maxBufferedEvents` are unacknowledged, so a slow or absent server slows the producer instead of
 * growing memory. `flush()` resolves once every event published before it is acknowledged.
 */
export class Publisher {
  readonly stats: PublisherStats = {
    published: 0, acked: 0, unique: 0, duplicates: 0, failed: 0, requests: 0, retries: 0, statusCodes: {},
  };
  private readonly urls: string[];
  private readonly batchSize: number;
  private readonly lingerMs: number;
  private readonly maxBuffered: number;
  private readonly concurrency: number;
  private readonly headers: Record<string, string>;
  private nextUrl = 0;
  private batch: PublishedEvent[] = [];
  private lingering: NodeJS.Timeout | undefined;
  /** Sealed batches waiting for a sender, each with the release of its `outstanding` promise. */
  private readonly ready: { events: PublishedEvent[]; settled: () => void }[] = [];
  /** One promise per sealed batch not yet acknowledged or failed: what flush() waits for. */
  private readonly outstanding = new Set<Promise<void>>();
  private senders = 0;
  private unsettled = 0;
  /** publish() calls waiting for room, in call order. */
  private readonly waiting: (() => void)[] = [];
  private lastWaiting: Promise<void> = ACCEPTED;
  private firstFailure: PublishError | undefined;
  private closed = false;

  constructor(private readonly options: PublisherOptions) {
    this.urls = (Array.isArray(options.url) ? options.url : [options.url]).map(baseUrl);
    if (this.urls.length === 0) throw new Error('Publisher: no url');
    this.batchSize = options.batchSize ?? 500;
    this.lingerMs = options.lingerMs ?? 20;
    this.concurrency = options.concurrency ?? 4;
    this.maxBuffered = Math.max(options.maxBufferedEvents ?? 10_000, this.batchSize);
    this.headers = {
      'content-type': 'application/json',
      ...(options.gzip ? { 'content-encoding': 'gzip' } : {}),
      ...authHeader(options.token),
    };
  }

  /** Events published and not yet acknowledged or failed: never above `maxBufferedEvents`. */
  get buffered(): number {
    return this.unsettled;
  }

  /** Buffers the event; waits (in call order) while the buffer is full. */
  publish(event: PublishedEvent): Promise<void> {
    if (this.closed) return Promise.reject(new Error('Publisher: publish() after close()'));
    if (this.waiting.length === 0 && this.unsettled < this.maxBuffered) {
      this.accept(event);
      return ACCEPTED;
    }
    this.lastWaiting = new Promise((resolve) => this.waiting.push(() => {
      this.accept(event);
      resolve();
    }));
    return this.lastWaiting;
  }

  /**
   * Resolves once every event published before the call is acknowledged (committed: 200); rejects with
   * the first PublishError since the previous flush when some failed (all of them went to `onError`).
   */
  async flush(): Promise<void> {
    await this.lastWaiting;
    this.seal();
    await Promise.all(this.outstanding);
    const failure = this.firstFailure;
    this.firstFailure = undefined;
    if (failure) throw failure;
  }

  /** Flushes, and refuses publish() from now on. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private accept(event: PublishedEvent): void {
    this.batch.push(event);
    this.unsettled++;
    this.stats.published++;
    if (this.batch.length >= this.batchSize) this.seal();
    else this.lingering ??= setTimeout(() => this.seal(), this.lingerMs);
  }

  private seal(): void {
    clearTimeout(this.lingering);
    this.lingering = undefined;
    if (this.batch.length === 0) return;
    let settled!: () => void;
    const promise = new Promise<void>((resolve) => (settled = resolve));
    this.outstanding.add(promise);
    void promise.then(() => this.outstanding.delete(promise));
    this.ready.push({ events: this.batch, settled });
    this.batch = [];
    while (this.senders < this.concurrency && this.ready.length > 0) void this.sender();
  }

  private async sender(): Promise<void> {
    this.senders++;
    for (let next = this.ready.shift(); next; next = this.ready.shift()) {
      await this.deliver(next.events);
      next.settled();
    }
    this.senders--;
  }

  /** Gets the events stored or reported failed; a refusal that names some events, or a size, gets the rest stored. */
  private async deliver(events: PublishedEvent[]): Promise<void> {
    let outcome: PublishAnswer | AggregatorError;
    try {
      const body = await this.body(events);
      outcome = await withRetries(() => this.send(body), {
        maxAttempts: this.options.maxAttempts,
        maxDelayMs: this.options.maxRetryDelayMs,
        onRetry: () => void this.stats.retries++,
      });
    } catch (error) {
      outcome = error instanceof AggregatorError ? error : exhausted(error as Error);
    }
    if (!(outcome instanceof AggregatorError)) {
      this.stats.acked += events.length;
      this.stats.unique += outcome.unique;
      this.stats.duplicates += outcome.duplicates;
      return this.settle(events.length);
    }
    if (TOO_LARGE.has(outcome.code) && events.length > 1) {
      const half = Math.ceil(events.length / 2);
      await this.deliver(events.slice(0, half));
      return this.deliver(events.slice(half));
    }
    // All-or-nothing: one invalid event refused the request, so the valid ones go again without it.
    const named = outcome.code === 'INVALID_EVENT' ? new Set(outcome.errors.map((e) => e.index)) : new Set<number>();
    if (named.size === 0 || named.size === events.length) return this.fail(outcome, events);
    const invalid = [...named].sort((a, b) => a - b);
    const position = new Map(invalid.map((index, i) => [index, i]));
    this.fail(
      new AggregatorError(outcome.status, outcome.code, outcome.message, outcome.errors.map((e) => ({ ...e, index: position.get(e.index)! }))),
      invalid.map((index) => events[index]!),
    );
    await this.deliver(events.filter((_, index) => !named.has(index)));
  }

  private async body(events: PublishedEvent[]): Promise<string | Buffer> {
    const json = JSON.stringify(events);
    return this.options.gzip ? gzipAsync(json) : json;
  }

  private async send(body: string | Buffer): Promise<PublishAnswer> {
    const url = this.urls[this.nextUrl++ % this.urls.length]!;
    this.stats.requests++;
    const res = await fetch(`${url}/publish`, {
      method: 'POST', headers: this.headers, body, signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
    });
    this.stats.statusCodes[res.status] = (this.stats.statusCodes[res.status] ?? 0) + 1;
    if (res.ok) return (await res.json()) as PublishAnswer;
    throw await refusal(res);
  }

  private fail(refused: AggregatorError, events: PublishedEvent[]): void {
    const error = new PublishError(refused, events);
    this.stats.failed += events.length;
    this.firstFailure ??= error;
    this.options.onError?.(error);
    this.settle(events.length);
  }

  private settle(count: number): void {
    this.unsettled -= count;
    while (this.waiting.length > 0 && this.unsettled < this.maxBuffered) this.waiting.shift()!();
  }
}

/** The last transient failure once attempts are spent, or an error no attempt could cure (an unserializable event). */
function exhausted(error: Error): AggregatorError {
  return error instanceof Transient
    ? new AggregatorError(error.status, 'RETRIES_EXHAUSTED', `gave up retrying: ${error.message}`)
    : new AggregatorError(0, 'UNSENDABLE', error.message);
}
