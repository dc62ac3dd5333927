import type { EventReader, PurgeHorizon, ReadableTopics } from '../store/store.js';

/**
 * Whether a read after a cursor may have missed purged events: what the `/events` purge header and the
 * stream's `gap` tell. Asked after the read it is about: purges only advance, so a horizon read after the
 * page sees every purge the page missed (one that came in between is told too, which is why the header says
 * "may"). A horizon learned any other way (the writer's upkeep reports) can arrive after a read that a
 * purge already emptied, so it could only ever skip the check wrongly.
 *
 * Where no purge can happen while this process runs (`purging` false: SQLite without RETENTION or
 * DEDUP_WINDOW), the store-wide horizon left by earlier runs is read once, and a cursor at or past it costs
 * nothing; elsewhere every check is one small read.
 */
export class PurgeCheck {
  private fixedMax: Promise<number> | undefined;

  constructor(private readonly reader: EventReader, private readonly purging: boolean) {}

  /**
   * The horizon of `topics` (undefined: every topic, or every `readable` one) when some of their events
   * after `after` are purged; else undefined.
   */
  async behind(topics: readonly string[] | undefined, after: number, readable?: ReadableTopics): Promise<PurgeHorizon | undefined> {
    if (!this.purging && after >= await this.storeMax()) return undefined;
    return behind(await this.reader.purgeHorizon(topics, readable), after);
  }

  /** False when no event can have been purged: nothing was before this process started, and nothing is now. */
  async mayHavePurged(): Promise<boolean> {
    return this.purging || (await this.storeMax()) > 0;
  }

  private storeMax(): Promise<number> {
    this.fixedMax ??= this.reader.purgeHorizon(undefined).then(({ max }) => max, (error: unknown) => {
      this.fixedMax = undefined;
      throw error;
    });
    return this.fixedMax;
  }
}

/** `horizon` when some events after `after` are purged by it; else undefined. */
export function behind(horizon: PurgeHorizon, after: number): PurgeHorizon | undefined {
  return after < horizon.max ? horizon : undefined;
}
