import type { Logger } from '../logger.js';
import type { ConsumerStatus } from '../store/consumers.js';
import type { EventReader } from '../store/store.js';
import type { CommitSignal } from './commit-signal.js';

/** How often the lags are re-read at most, when something changed. */
const REFRESH_MS = 1_000;
/** How often they are re-read anyway: other replicas commit positions this one hears nothing of. */
const IDLE_REFRESH_MS = 15_000;

export interface ConsumerSummary {
  count: number;
  maxLag: number;
  /** When the figures were read; null before the first read. */
  asOf: string | null;
}

/**
 * Every consumer's lag, cached for /stats and /metrics so that neither reads the store per call. It is
 * re-read in the background (one consumerStatus() read: a count over each consumer's unconsumed index
 * range) at most once a second after a commit or a consumer change, and every 15 s regardless.
 */
export class ConsumerLagCache {
  private consumers: ConsumerStatus[] = [];
  private asOf: string | null = null;
  private dirty = true;
  private lastRead = 0;
  private reading = false;
  private readonly timer: NodeJS.Timeout;
  private readonly stopListening: () => void;

  constructor(private readonly reader: EventReader, commits: CommitSignal, private readonly log: Logger) {
    this.stopListening = commits.listen(() => this.invalidate());
    this.timer = setInterval(() => void this.refresh(), REFRESH_MS).unref();
  }

  /** Something changed (a commit, a consumer written): re-read at the next tick. */
  invalidate(): void {
    this.dirty = true;
  }

  lags(): readonly ConsumerStatus[] {
    return this.consumers;
  }

  summary(): ConsumerSummary {
    return { count: this.consumers.length, maxLag: Math.max(0, ...this.consumers.map((c) => c.lag)), asOf: this.asOf };
  }

  close(): void {
    clearInterval(this.timer);
    this.stopListening();
  }

  private async refresh(): Promise<void> {
    if (this.reading || (!this.dirty && Date.now() - this.lastRead < IDLE_REFRESH_MS)) return;
    this.reading = true;
    this.dirty = false;
    try {
      this.consumers = await this.reader.consumerStatus();
      this.lastRead = Date.now();
      this.asOf = new Date(this.lastRead).toISOString();
    } catch (error) {
      // The figures stay as they were; the next tick tries again.
      this.dirty = true;
      this.log.debug({ err: error }, 'consumer lags not refreshed');
    } finally {
      this.reading = false;
    }
  }
}
