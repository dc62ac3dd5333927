/**
 * The topics a commit stored events of; undefined when not known (another replica's commit that touched
 * too many topics to name, or a reconnect after which notifications may have been missed): any topic.
 */
export type TouchedTopics = readonly string[] | undefined;

/**
 * "There may be new events": raised after every local commit and, on a shared store, when another replica
 * commits (the PostgreSQL store's NOTIFY), with the topics the commit touched. A wake-up only means "read
 * the store again"; what a reader may see is always decided by the store (on PostgreSQL, the commit
 * horizon), so a wake-up that comes early or twice can delay an event but never skip or repeat one.
 */
export class CommitSignal {
  private readonly listeners = new Set<(topics: TouchedTopics) => void>();

  /** Wakes every listener and every waiter whose topics `topics` touches. */
  notify(topics?: TouchedTopics): void {
    for (const listener of [...this.listeners]) listener(topics);
  }

  /** Calls `listener` on every notify until the returned function is called. */
  listen(listener: (topics: TouchedTopics) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Resolves true at the next notify that `wants` (default: every one), or false after `timeoutMs` or once
   * `abort` fires.
   */
  next(timeoutMs: number, abort?: AbortSignal, wants: (topics: TouchedTopics) => boolean = () => true): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (woken: boolean) => {
        clearTimeout(timer);
        stop();
        abort?.removeEventListener('abort', aborted);
        resolve(woken);
      };
      const aborted = () => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      const stop = this.listen((topics) => {
        if (wants(topics)) done(true);
      });
      if (abort?.aborted) done(false);
      else abort?.addEventListener('abort', aborted, { once: true });
    });
  }
}
