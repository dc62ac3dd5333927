/**
 * The bytes catch-up pages may hold across all of a server's streams beyond what their sockets hold: the
 * rest of a page a client has not taken yet, kept instead of read again, and the next page, read while the
 * client takes the last one. Each stream holds at most one of each; when the budget is spent, a stream reads
 * only what its socket takes (as a stalled one must), so however many streams stall, they hold at most this.
 */
export class ReadAheadBudget {
  private used = 0;

  constructor(readonly limit: number) {}

  /** Bytes held now. */
  get bytes(): number {
    return this.used;
  }

  /** A share of `bytes`, or undefined when the budget cannot spare them. */
  take(bytes: number): BudgetShare | undefined {
    if (this.used + bytes > this.limit) return undefined;
    this.used += bytes;
    return new BudgetShare(bytes, (change) => (this.used += change));
  }
}

/** Bytes taken from a ReadAheadBudget, until released (once). */
export class BudgetShare {
  constructor(private held: number, private readonly change: (bytes: number) => void) {}

  /** Gives back what it holds beyond `bytes` (a page read came back smaller than its cap). */
  shrink(bytes: number): void {
    if (bytes >= this.held) return;
    this.change(bytes - this.held);
    this.held = bytes;
  }

  release(): void {
    this.shrink(0);
  }
}
