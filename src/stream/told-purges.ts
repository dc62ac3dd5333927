/**
 * The purges a stream has told of in `gap` events: the purge horizon of each of its topics that lay above
 * where the last gap resumed it. A check after a read finds a purge not told yet when the horizons above
 * the cursor now differ from the told ones still above it. Horizons only advance, so each topic's is at
 * least what was told, and the two lists are equal exactly when none moved above the cursor since. (The
 * highest told horizon alone would hide a later purge of another topic below it.)
 *
 * A gap whose told horizons lie above its resumed_after carries their sum in its id
 * (`<resumed_after>:<sum>`), so that a client reconnecting with that id is not told the same purges again:
 * over the same topics, the horizons above resumed_after add up to that sum exactly when none moved, again
 * because each only advances. A client that sends a sum it was never given only hides purges from itself.
 */
export class ToldPurges {
  private horizons: readonly number[] = [];

  /** `sum`: from a reconnect's Last-Event-ID, the told horizons above its seq, until the first check reads them. */
  constructor(private sum?: bigint) {}

  /** Nothing is purged above the cursor now: nothing told lies ahead any more. */
  clear(): void {
    this.horizons = [];
    this.sum = undefined;
  }

  /** Whether `above`, every purge horizon of the stream's topics above `after` (its cursor) read now, holds one not told. */
  untold(above: readonly number[], after: number): boolean {
    const told = this.sum === undefined ? sameHorizons(above, this.horizons.filter((h) => h > after)) : this.sum === sumOf(above);
    if (told) {
      this.horizons = above;
      this.sum = undefined;
    }
    return !told;
  }

  /** Records a gap that told of `above` and resumes after `resumedAfter`; returns the gap's id. */
  tell(above: readonly number[], resumedAfter: number): string {
    this.horizons = above.filter((h) => h > resumedAfter);
    this.sum = undefined;
    return this.horizons.length === 0 ? String(resumedAfter) : `${resumedAfter}:${sumOf(this.horizons)}`;
  }
}

function sameHorizons(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((h, i) => h === b[i]);
}

/** Exact whatever the count: a sum of seqs can pass 2^53. */
function sumOf(horizons: readonly number[]): bigint {
  return horizons.reduce((sum, h) => sum + BigInt(h), 0n);
}
