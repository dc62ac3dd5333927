import { setTimeout as sleep } from 'node:timers/promises';
import { parseRetryAfter, retryDelayMs } from './backoff.js';
import { isRfc3339DateTime } from '../event-rules.js';
import { AggregatorError } from './errors.js';

/** What every client is told: where the aggregator is and how to authenticate. */
export interface Connection {
  /** The aggregator's base URL, e.g. http://127.0.0.1:8080. */
  url: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string | undefined;
}

/** What a reader (stream or consumer) is told: whether its reads come compressed. */
export interface ReadEncoding {
  /**
   * Ask for gzip-compressed reads (the default): about 5 × fewer bytes for log events, for a few µs of CPU per
   * event on each side (docs/performance.md, "Compressed reads"). false: uncompressed, e.g. on the same host.
   */
  gzip?: boolean | undefined;
}

/** Asked for explicitly rather than left to fetch's own default, which a runtime may change. */
export const acceptEncoding = ({ gzip = true }: ReadEncoding) => ({ 'accept-encoding': gzip ? 'gzip' : 'identity' });

export const baseUrl = (url: string) => url.replace(/\/+$/, '');

/** A time-range bound (`since`, `until`) as the server takes it. Throws on one it would refuse as not RFC 3339. */
export function rangeTime(name: string, time: string | Date): string {
  if (time instanceof Date) return time.toISOString();
  if (!isRfc3339DateTime(time)) throw new Error(`${name} must be an RFC 3339 time, got "${time}"`);
  return time;
}

export const authHeader = (token: string | undefined): Record<string, string> =>
  token ? { authorization: `Bearer ${token}` } : {};

/** A failure that waiting may cure: a network error, a timeout, 5xx, or a 429 other than a cap. */
export class Transient extends Error {
  constructor(message: string, readonly status = 0, readonly retryAfterSeconds?: number) {
    super(message);
  }
}

/**
 * Sorts a non-2xx answer: Transient to retry, or the AggregatorError that retrying will not fix. A 429 from
 * a proxy's rate limit passes by waiting; the aggregator's caps (TOPIC_LIMIT, CONSUMER_LIMIT) do not.
 */
export async function refusal(res: Response): Promise<Transient | AggregatorError> {
  const error = await AggregatorError.from(res);
  if (res.status >= 500 || (res.status === 429 && !error.code.endsWith('_LIMIT'))) {
    return new Transient(error.message, res.status, parseRetryAfter(res.headers.get('retry-after')));
  }
  return error;
}

/**
 * Calls `attempt` until it returns, retrying Transient failures (and network errors, which fetch throws
 * as TypeError or AbortError) with full-jitter backoff that honours Retry-After; `onRetry` sees each.
 * Anything else is thrown as it is, and so is the last Transient once `maxAttempts` are spent.
 */
export async function withRetries<T>(
  attempt: () => Promise<T>,
  { maxAttempts = Infinity, maxDelayMs, signal, onRetry }: {
    maxAttempts?: number | undefined;
    /** The cap of the exponential backoff (Retry-After may still ask for longer). */
    maxDelayMs?: number | undefined;
    signal?: AbortSignal | undefined;
    onRetry?: (error: Transient, delayMs: number) => void;
  },
): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      const transient = asTransient(error, signal);
      if (!transient || n + 1 >= maxAttempts) throw transient ?? error;
      const delay = retryDelayMs(n, transient.retryAfterSeconds, undefined, maxDelayMs);
      onRetry?.(transient, delay);
      await sleep(delay, undefined, signal ? { signal } : {});
    }
  }
}

/** A network-level failure (connection refused or reset, a timeout) is transient; our own abort is not. */
export function asTransient(error: unknown, signal?: AbortSignal): Transient | undefined {
  if (error instanceof Transient) return error;
  if (signal?.aborted) return undefined;
  if (error instanceof TypeError || (error instanceof DOMException && error.name === 'TimeoutError')) {
    return new Transient(`${error.message}${error.cause instanceof Error ? ` (${error.cause.message})` : ''}`);
  }
  return undefined;
}
