/** How many topics /stats names: the ones with the most stored events. */
export const TOP_TOPICS = 100;

/**
 * Stored events per topic, as the HTTP thread knows them, with the `limit` topics holding the most events
 * kept up to date as counts change, so /stats never sorts every topic.
 *
 * Invariant (unless `stale`): no topic outside `leaders` has more events than any leader, and `leaders` is
 * full whenever there are topics outside it. Counts only grow between resets, so an update touches at most
 * the one topic that passes the least leader. `floor` is a lower bound of the leaders' least count: an
 * outsider at or below it cannot pass, which keeps the common update O(1).
 */
export class TopicCounts {
  private readonly counts = new Map<string, number>();
  private readonly leaders = new Set<string>();
  private floor = 0;
  private stale = false;

  constructor(private readonly limit = TOP_TOPICS) {}

  get size(): number {
    return this.counts.size;
  }

  has(topic: string): boolean {
    return this.counts.has(topic);
  }

  /** Replaces every count (a fresh consumer's full list). */
  reset(entries: Iterable<readonly [string, number]>): void {
    this.counts.clear();
    for (const [topic, events] of entries) this.counts.set(topic, events);
    this.stale = true;
  }

  add(topic: string, events: number): void {
    this.set(topic, (this.counts.get(topic) ?? 0) + events);
  }

  /** Sets a topic's store-wide total. */
  set(topic: string, events: number): void {
    const before = this.counts.get(topic) ?? 0;
    this.counts.set(topic, events);
    if (this.stale || this.leaders.has(topic)) {
      // A leader that fell may now be passed by an outsider: choose again.
      if (events < before) this.stale = true;
      return;
    }
    if (this.leaders.size < this.limit) {
      this.leaders.add(topic);
      this.floor = Math.min(this.floor, events);
      return;
    }
    if (events <= this.floor) return;
    const [least, leastEvents] = this.least();
    this.floor = leastEvents;
    if (events <= leastEvents) return;
    this.leaders.delete(least);
    this.leaders.add(topic);
    this.floor = this.least()[1];
  }

  /** The topics with the most events (at most `limit`; ties at the edge fall either way), most first. */
  top(): [topic: string, events: number][] {
    if (this.stale) this.chooseLeaders();
    return [...this.leaders]
      .map((topic): [string, number] => [topic, this.counts.get(topic)!])
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  }

  /** The full choice, after a reset: one sort of every topic, not once per request. */
  private chooseLeaders(): void {
    const ranked = [...this.counts].sort((a, b) => b[1] - a[1]).slice(0, this.limit);
    this.leaders.clear();
    for (const [topic] of ranked) this.leaders.add(topic);
    this.floor = ranked.at(-1)?.[1] ?? 0;
    this.stale = false;
  }

  private least(): [string, number] {
    let least: [string, number] = ['', Infinity];
    for (const topic of this.leaders) {
      const events = this.counts.get(topic)!;
      if (events < least[1]) least = [topic, events];
    }
    return least;
  }
}
