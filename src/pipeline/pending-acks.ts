import { NOBODY_WAITS } from '../ring/event-codec.js';
import { unpackAcks, type PackedAcks } from './writer-protocol.js';
import { PublishError } from './errors.js';

export interface CommitAck {
  accepted: number;
  unique: number;
  duplicates: number;
}

interface Pending extends CommitAck {
  remaining: number;
  deadline: number;
  resolve: (ack: CommitAck) => void;
  reject: (error: Error) => void;
}

const SWEEP_MS = 250;
const MAX_REQUEST_ID = 0xffffffff;

/**
 * Publish requests waiting for their events to commit (group commit: one consumer batch can settle many
 * requests, and one large request can span several batches). Request id NOBODY_WAITS is never handed out: it marks
 * events nobody waits for.
 */
export class PendingAcks {
  private readonly pending = new Map<number, Pending>();
  private lastId = 0;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly timeoutMs: number) {
    // One timer for all requests instead of one per request.
    this.sweeper = setInterval(() => this.expire(), SWEEP_MS).unref();
  }

  get size(): number {
    return this.pending.size;
  }

  nextId(): number {
    do this.lastId = (this.lastId % MAX_REQUEST_ID) + 1;
    while (this.pending.has(this.lastId) || this.lastId === NOBODY_WAITS);
    return this.lastId;
  }

  /** Resolves once `events` events of request `id` are committed. */
  wait(id: number, events: number): Promise<CommitAck> {
    return new Promise((resolve, reject) => {
      this.pending.set(id, {
        accepted: events, unique: 0, duplicates: 0, remaining: events,
        deadline: Date.now() + this.timeoutMs, resolve, reject,
      });
    });
  }

  /** Applies the acks of one commit. */
  settle(acks: PackedAcks): void {
    for (const { requestId, unique, duplicates } of unpackAcks(acks)) {
      const entry = this.pending.get(requestId);
      if (!entry) continue; // already failed or timed out: the client was told to retry
      entry.unique += unique;
      entry.duplicates += duplicates;
      entry.remaining -= unique + duplicates;
      if (entry.remaining === 0) {
        this.pending.delete(requestId);
        entry.resolve({ accepted: entry.accepted, unique: entry.unique, duplicates: entry.duplicates });
      }
    }
  }

  /** Answers every waiting request with `error`; their events may still commit, and a retry is a duplicate. */
  failAll(error: Error): void {
    for (const entry of this.pending.values()) entry.reject(error);
    this.pending.clear();
  }

  close(): void {
    clearInterval(this.sweeper);
    this.failAll(new PublishError('SHUTTING_DOWN', 'the aggregator is shutting down'));
  }

  private expire(): void {
    const now = Date.now();
    for (const [id, entry] of this.pending) {
      if (entry.deadline > now) continue;
      this.pending.delete(id);
      entry.reject(new PublishError('ACK_TIMEOUT', `events were queued but not committed within ${this.timeoutMs} ms; retry`));
    }
  }
}
