/** How many topics /stats names: the ones with the most stored events. */
export const TOP_TOPICS = 100;

/**
 * Stored events per topic, as the HTTP thread knows them, with the `limit` topics holding the most events
 * kept up to date as counts change, so /stats never sorts every topic.
 *
 * Invariant (unless `stale`): no topic outside `leaders` has more events than any leader, and `leaders` is
 * full whenever there are topics outside it. `floor` is a lower bound of the leaders' least count: an
 * outsider at or below it cannot pass, which keeps the common update O(1). Counts mostly grow, but a purge
 * sets lower ones: `ceiling`, an upper bound of the outsiders' counts, lets a leader fall that far and stay;
 * only one that falls below it makes the next top() choose again from every topic.
 */
export class TopicCounts {
  private readonly counts = new Map<string, number>();
  private readonly leaders = new Set<string>();
  private floor = 0;
  private ceiling = 0;
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

  /** Sets a topic's store-wide total (lower after a purge). */
  set(topic: string, events: number): void {
    this.counts.set(topic, events);
    if (this.stale) return;
    if (this.leaders.has(topic)) {
      // Below an outsider that may hold more: choose again.
      if (events < this.ceiling) this.stale = true;
      else this.floor = Math.min(this.floor, events);
      return;
    }
    if (this.leaders.size < this.limit) {
      this.leaders.add(topic);
      this.floor = Math.min(this.floor, events);
      return;
    }
    if (events > this.floor) {
      const [least, leastEvents] = this.least();
      this.floor = leastEvents;
      if (events > leastEvents) {
        this.leaders.delete(least);
        this.leaders.add(topic);
        this.floor = this.least()[1];
        this.ceiling = Math.max(this.ceiling, leastEvents);
        return;
      }
    }
    this.ceiling = Math.max(this.ceiling, events);
  }

  /** The topics with the most events (at most `limit`; ties at the edge fall either way), most first. */
  top(): [topic: string, events: number][] {
    if (this.stale) this.chooseLeaders();
    return [...this.leaders]
      .map((topic): [string, number] => [topic, this.counts.get(topic)!])
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  }

  /**
   * The topics `accepts` takes with the most events (at most `limit`), most first, and how many it takes:
   * one pass over every topic, for a reader that may see only some of them (an access token's).
   */
  topWhere(accepts: (topic: string) => boolean): { top: [topic: string, events: number][]; count: number } {
    const taken = [...this.counts].filter(([topic]) => accepts(topic));
    taken.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    return { top: taken.slice(0, this.limit), count: taken.length };
  }

  /** The full choice, after a reset or a leader's fall: one sort of every topic, not once per request. */
  private chooseLeaders(): void {
    const ranked = [...this.counts].sort((a, b) => b[1] - a[1]);
    this.leaders.clear();
    for (const [topic] of ranked.slice(0, this.limit)) this.leaders.add(topic);
    this.floor = ranked[Math.min(this.limit, ranked.length) - 1]?.[1] ?? 0;
    this.ceiling = ranked[this.limit]?.[1] ?? 0;
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
