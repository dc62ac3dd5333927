import { v4 as uuidv4, v7 as uuidv7 } from 'uuid';
import type { PublishedEvent } from '../event.js';

export type IdKind = 'v4' | 'v7';

export interface SyntheticEventsOptions {
  /** Share of events that re-send an earlier event (0–1): what at-least-once delivery looks like. */
  duplicateRatio: number;
  topics: number;
  /** v4: random ids; v7: time-ordered ids. */
  idKind: IdKind;
  source?: string;
  /** Picks the re-sent events; a seeded one makes the stream's duplicates replayable in tests. */
  random?: () => number;
}

/** Earlier events kept for re-sending; bounded so a long run does not grow without end. */
const RESERVOIR = 10_000;

/**
 * Generates synthetic log events with a chosen share of duplicates, for the publisher CLI, the perf harness
 * and tests (named so as not to be mistaken for the browser's EventSource, an SSE client).
 */
export class SyntheticEvents {
  private readonly sent: PublishedEvent[] = [];
  private readonly newId: () => string;
  uniqueCount = 0;
  duplicateCount = 0;

  constructor(private readonly options: SyntheticEventsOptions) {
    this.newId = options.idKind === 'v7' ? uuidv7 : uuidv4;
  }

  next(): PublishedEvent {
    const { sent } = this;
    const random = this.options.random ?? Math.random;
    if (sent.length > 0 && random() < this.options.duplicateRatio) {
      this.duplicateCount++;
      return sent[Math.floor(random() * sent.length)]!;
    }
    const n = this.uniqueCount++;
    const event: PublishedEvent = {
      topic: `events.topic-${n % this.options.topics}`,
      event_id: this.newId(),
      timestamp: new Date().toISOString(),
      source: this.options.source ?? 'publisher',
      payload: { n, level: 'info', message: 'user signed in', user: uuidv4() },
    };
    if (sent.length < RESERVOIR) sent.push(event);
    else sent[n % RESERVOIR] = event;
    return event;
  }

  batch(size: number): PublishedEvent[] {
    return Array.from({ length: size }, () => this.next());
  }
}
