import type { Logger } from '../logger.js';

export interface BackgroundReadOptions {
  /** Re-read at most this often while the store changes... */
  minMs: number;
  /** ...and at least this often regardless: other replicas change a shared store without telling this one. */
  maxMs: number;
  /** Names the figures in the debug line of a read that failed. */
  what: string;
}

/**
 * A store read that HTTP handlers answer from without waiting for the store: the last value read, re-read in
 * the background at most every `minMs` after a change (a commit, say), and every `maxMs` regardless. A
 * failed read keeps the last value and is tried again at the next tick.
 */
export class BackgroundRead<T> {
  private current: T;
  private readAt: string | null = null;
  private dirty = true;
  private lastRead = 0;
  private reading = false;
  private readonly timer: NodeJS.Timeout;
  private readonly stopListening: () => void;

  /** `listen` calls its argument on every change until the function it returns is called. */
  constructor(
    private readonly read: () => Promise<T>, initial: T, listen: (onChange: () => void) => () => void,
    private readonly options: BackgroundReadOptions, private readonly log: Logger,
  ) {
    this.current = initial;
    this.stopListening = listen(() => this.invalidate());
    this.timer = setInterval(() => void this.refresh(), options.minMs).unref();
    void this.refresh();
  }

  get value(): T {
    return this.current;
  }

  /** When the value was read; null before the first read. */
  get asOf(): string | null {
    return this.readAt;
  }

  /** Something changed: re-read at the next tick. */
  invalidate(): void {
    this.dirty = true;
  }

  close(): void {
    clearInterval(this.timer);
    this.stopListening();
  }

  private async refresh(): Promise<void> {
    if (this.reading || (!this.dirty && Date.now() - this.lastRead < this.options.maxMs)) return;
    this.reading = true;
    this.dirty = false;
    try {
      this.current = await this.read();
      this.lastRead = Date.now();
      this.readAt = new Date(this.lastRead).toISOString();
    } catch (error) {
      this.dirty = true;
      this.log.debug({ err: error }, `${this.options.what} not refreshed`);
    } finally {
      this.reading = false;
    }
  }
}
