import { setTimeout as sleep } from 'node:timers/promises';
import { Publisher } from './publisher.js';
import type { SyntheticEvents } from './synthetic-events.js';

export interface LoadOptions {
  /** Aggregator base URLs; requests rotate over them. */
  urls: string[];
  /** Stop after this many events… */
  events?: number | undefined;
  /** …or after this many seconds. */
  durationSeconds?: number | undefined;
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

export interface LoadReport {
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

/** Below this, waiting for an event's due time costs more than it paces: timers are not that fine. */
const PACING_GRANULARITY_MS = 1;

/**
 * The publisher CLI's load: synthetic events through the client library's Publisher, as fast as
 * acknowledgements allow or paced to `rate`, until `events` are sent or `durationSeconds` passed; then
 * every event is acknowledged or failed (a refusal, or `maxAttempts` spent) before the report.
 */
export async function runLoad(
  source: SyntheticEvents,
  options: LoadOptions,
  onProgress: (report: LoadReport) => void = () => {},
): Promise<LoadReport> {
  const publisher = new Publisher({
    url: options.urls,
    token: options.token,
    batchSize: options.batchSize,
    concurrency: options.concurrency,
    // Room for every connection's batch in flight and the next one filling: acks, not the buffer, pace it.
    maxBufferedEvents: options.batchSize * options.concurrency * 2,
    timeoutMs: options.timeoutMs,
    maxAttempts: options.maxAttempts,
    gzip: options.gzip ?? false,
  });
  const started = performance.now();
  const report = (): LoadReport => {
    const { published, acked, unique, duplicates, retries, failed, requests, statusCodes } = publisher.stats;
    return { sent: published, acked, unique, duplicates, retries, failed, requests, statusCodes, seconds: (performance.now() - started) / 1000 };
  };
  const deadline = options.durationSeconds ? started + options.durationSeconds * 1000 : Infinity;
  const total = options.events ?? Infinity;
  const progress = setInterval(() => onProgress(report()), 250);
  try {
    for (let n = 0; n < total; n++) {
      if (options.rate > 0) {
        // Paced: event n is due when the n events before it at `rate` per second are.
        const due = started + (n / options.rate) * 1000;
        if (due >= deadline) break;
        if (due - performance.now() > PACING_GRANULARITY_MS) await sleep(due - performance.now());
      } else if (performance.now() >= deadline) break;
      await publisher.publish(source.next());
    }
    // A failure is counted in the report (`failed`), which is what the caller looks at.
    await publisher.close().catch(() => undefined);
  } finally {
    clearInterval(progress);
  }
  return report();
}
