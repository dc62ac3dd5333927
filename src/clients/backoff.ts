/**
 * Exponential backoff with full jitter (a random wait between 0 and min(cap, base·2^attempt)), which
 * spreads retrying publishers apart instead of having them return in lockstep. A server's Retry-After is
 * a floor: retrying earlier would only be refused again.
 */
export function retryDelayMs(attempt: number, retryAfterSeconds?: number, baseMs = 100, capMs = 10_000): number {
  const jittered = Math.random() * Math.min(capMs, baseMs * 2 ** attempt);
  return Math.max(jittered, (retryAfterSeconds ?? 0) * 1000);
}

/** Seconds from a Retry-After header (delta-seconds or an HTTP date), or undefined. */
export function parseRetryAfter(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}
