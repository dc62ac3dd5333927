import type { IncomingEvent } from '../event.js';
import type { StoreCounters } from '../pipeline/messages.js';

/**
 * A commit the store could not make for a reason outside the batch (disk full, I/O error, file gone).
 * The batch was rolled back whole; the consumer retries it later.
 */
export class StoreError extends Error {
  override name = 'StoreError';
  constructor(message: string, readonly code: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Where the consumer stood in the ring when a batch committed; stored in the batch's own transaction. */
export interface RingCheckpoint {
  epoch: string;
  position: number;
}

export interface BatchResult {
  /** 1 where the event at that index was stored, 0 where it was a duplicate (of the store or the batch). */
  isNew: Uint8Array;
  counters: StoreCounters;
  /** Events this batch stored per topic. */
  perTopic: Map<string, number>;
}

/** The consumer's side of the store: one writer that commits whole batches. */
export interface EventStore {
  counters(): StoreCounters;
  /** Stored events per topic. */
  topicCounts(): Map<string, number>;
  checkpoint(): RingCheckpoint | undefined;
  /** Stores the new events of `events` and the checkpoint atomically: all of it or, on StoreError, none. */
  commitBatch(events: readonly IncomingEvent[], checkpoint: RingCheckpoint): BatchResult;
  close(): void;
}

export interface EventPageQuery {
  topic?: string | undefined;
  after: number;
  limit: number;
}

/** The HTTP side of the store: read-only, beside the writer. */
export interface EventReader {
  /** Stored events with `seq > after`, oldest first, as the text of a JSON array. */
  page(query: EventPageQuery): string;
  close(): void;
}
