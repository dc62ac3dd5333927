import type { Logger } from '../logger.js';
import { BackgroundRead } from '../lib/background-read.js';
import type { ConsumerStatus } from '../store/consumers.js';
import type { EventReader } from '../store/store.js';
import type { CommitSignal } from '../stream/commit-signal.js';

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
  private readonly lagsRead: BackgroundRead<ConsumerStatus[]>;

  constructor(reader: EventReader, commits: CommitSignal, log: Logger) {
    this.lagsRead = new BackgroundRead(() => reader.consumerStatus(), [], (onChange) => commits.listen(onChange),
      { minMs: 1_000, maxMs: 15_000, what: 'consumer lags' }, log);
  }

  /** A consumer was written: re-read at the next tick. */
  invalidate(): void {
    this.lagsRead.invalidate();
  }

  lags(): readonly ConsumerStatus[] {
    return this.lagsRead.value;
  }

  summary(): ConsumerSummary {
    const consumers = this.lagsRead.value;
    return { count: consumers.length, maxLag: Math.max(0, ...consumers.map((c) => c.lag)), asOf: this.lagsRead.asOf };
  }

  close(): void {
    this.lagsRead.close();
  }
}
