/**
 * "There may be new events": raised after every local commit and, on a shared store, when another replica
 * commits (the PostgreSQL store's NOTIFY). It carries no data on purpose: a wake-up only means "read the
 * store again"; what a reader may see is always decided by the store (on PostgreSQL, the commit horizon),
 * so a wake-up that comes early or twice can delay an event but never skip or repeat one.
 */
export class CommitSignal {
  private readonly listeners = new Set<() => void>();

  /** Wakes every listener and every waiter. */
  notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  /** Calls `listener` on every notify until the returned function is called. */
  listen(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves true at the next notify, or false after `timeoutMs` or once `abort` fires. */
  next(timeoutMs: number, abort?: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (woken: boolean) => {
        clearTimeout(timer);
        stop();
        abort?.removeEventListener('abort', aborted);
        resolve(woken);
      };
      const aborted = () => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      const stop = this.listen(() => done(true));
      if (abort?.aborted) done(false);
      else abort?.addEventListener('abort', aborted, { once: true });
    });
  }
}
