import { ReadersBusyError } from './store.js';

export interface ReadGateLimits {
  /** Reads running at once (pool connections, or 1 for the reader worker). */
  slots: number;
  /** Reads that may wait for a slot; one more is refused at once. */
  maxQueued: number;
  /** How long a read may wait for a slot before it is refused. */
  maxWaitMs: number;
}

/**
 * Bounds the reads in flight and the reads waiting for them, so a crowd of readers gets a quick
 * ReadersBusyError (503 + Retry-After) instead of piling up memory and latency behind a busy reader.
 */
export class ReadGate {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limits: ReadGateLimits) {}

  async run<T>(read: () => Promise<T>): Promise<T> {
    if (this.active < this.limits.slots) this.active++;
    else await this.queue();
    try {
      return await read();
    } finally {
      this.release();
    }
  }

  /** Resolves once a finishing read hands its slot over. */
  private queue(): Promise<void> {
    if (this.waiting.length >= this.limits.maxQueued) {
      return Promise.reject(new ReadersBusyError(`${this.waiting.length} reads are already waiting for a reader`));
    }
    return new Promise((resolve, reject) => {
      const admit = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(admit), 1);
        reject(new ReadersBusyError(`no reader was free within ${this.limits.maxWaitMs} ms`));
      }, this.limits.maxWaitMs);
      this.waiting.push(admit);
    });
  }

  /** The slot goes straight to the next waiter, so a new arrival cannot take it in between. */
  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
}
