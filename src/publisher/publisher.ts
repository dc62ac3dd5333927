import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { PublishedEvent } from '../event.js';
import { parseRetryAfter, retryDelayMs } from './backoff.js';
import type { EventSource } from './event-source.js';

export interface PublisherOptions {
  /** Aggregator base URLs; requests rotate over them. */
  urls: string[];
  /** Stop after this many events… */
  events?: number;
  /** …or after this many seconds. */
  durationSeconds?: number;
  /** Events per second across all connections (0: as fast as acknowledgements allow). */
  rate: number;
  batchSize: number;
  concurrency: number;
  timeoutMs: number;
  maxAttempts: number;
  token?: string;
  /** Send bodies with Content-Encoding: gzip. */
  gzip?: boolean;
}

export interface PublisherReport {
  sent: number;
  acked: number;
  unique: number;
  duplicates: number;
  retries: number;
  failed: number;
  requests: number;
  seconds: number;
  statusCodes: Record<string, number>;
}

const gzipAsync = promisify(gzip);

/** A request failure worth retrying: the event may or may not have been stored, and a retry is safe. */
class Retryable extends Error {
  constructor(message: string, readonly retryAfterSeconds?: number) {
    super(message);
  }
}

/**
 * At-least-once publishing: every batch is retried on network errors, timeouts, 5xx and 429 until it is
 * acknowledged (or maxAttempts is spent), with full-jitter backoff that honours Retry-After. 4xx other
 * than 429 means the request itself is wrong and is not retried; so does the aggregator's TOPIC_LIMIT 429.
 */
export async function runPublisher(
  source: EventSource,
  options: PublisherOptions,
  onProgress: (report: PublisherReport) => void = () => {},
): Promise<PublisherReport> {
  const report: PublisherReport = {
    sent: 0, acked: 0, unique: 0, duplicates: 0, retries: 0, failed: 0, requests: 0, seconds: 0, statusCodes: {},
  };
  const started = performance.now();
  const deadline = options.durationSeconds ? started + options.durationSeconds * 1000 : Infinity;
  const total = options.events ?? Infinity;
  let claimed = 0;
  let nextUrl = 0;
  const progress = setInterval(() => onProgress({ ...report, seconds: (performance.now() - started) / 1000 }), 250);

  const send = async (batch: PublishedEvent[]) => {
    const url = options.urls[nextUrl++ % options.urls.length]!;
    const json = JSON.stringify(batch);
    report.requests++;
    let res: Response;
    try {
      res = await fetch(`${url}/publish`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(options.gzip ? { 'content-encoding': 'gzip' } : {}),
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        },
        body: options.gzip ? await gzipAsync(json) : json,
        signal: AbortSignal.timeout(options.timeoutMs),
      });
    } catch (error) {
      throw new Retryable((error as Error).message);
    }
    report.statusCodes[res.status] = (report.statusCodes[res.status] ?? 0) + 1;
    const body = (await res.json().catch(() => ({}))) as { unique?: number; duplicates?: number; code?: string; message?: string };
    if (res.ok) return body;
    // A 429 from a proxy's rate limit passes; the aggregator's topic cap does not pass by waiting.
    if ((res.status === 429 && body.code !== 'TOPIC_LIMIT') || res.status >= 500) {
      throw new Retryable(`HTTP ${res.status}`, parseRetryAfter(res.headers.get('retry-after')));
    }
    throw new Error(`HTTP ${res.status}${body.code ? ` ${body.code}` : ''}: ${body.message ?? 'refused'}`);
  };

  const connection = async () => {
    for (;;) {
      const size = Math.min(options.batchSize, total - claimed);
      if (size <= 0 || performance.now() >= deadline) return;
      claimed += size;
      if (options.rate > 0) {
        // Pace to the target rate: this batch is due when the events before it at `rate` per second are.
        const due = started + ((claimed - size) / options.rate) * 1000;
        if (due >= deadline) return;
        if (due > performance.now()) await sleep(due - performance.now());
      }
      const batch = source.batch(size);
      report.sent += size;
      for (let attempt = 0; ; attempt++) {
        try {
          const body = await send(batch);
          report.acked += size;
          report.unique += body.unique ?? 0;
          report.duplicates += body.duplicates ?? 0;
          break;
        } catch (error) {
          if (!(error instanceof Retryable) || attempt + 1 >= options.maxAttempts) {
            report.failed += size;
            break;
          }
          report.retries++;
          await sleep(retryDelayMs(attempt, error.retryAfterSeconds));
        }
      }
    }
  };

  try {
    await Promise.all(Array.from({ length: options.concurrency }, connection));
  } finally {
    clearInterval(progress);
  }
  report.seconds = (performance.now() - started) / 1000;
  return report;
}
