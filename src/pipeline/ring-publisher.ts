import type { IncomingEvent } from '../event.js';
import { encodedLength, NOBODY_WAITS, writeEvent } from '../ring/event-codec.js';
import type { PackedAcks } from './writer-protocol.js';
import { RingProducer } from '../ring/ring.js';
import { PublishError } from './errors.js';
import { PendingAcks, type CommitAck } from './pending-acks.js';

export interface RingPublisherOptions {
  ackTimeoutMs: number;
  maxTopics: number;
  /** The topics the store holds, as the writer last reported them. */
  storedTopics: { has(topic: string): boolean; readonly size: number };
}

/**
 * The producer: puts each request's events into the ring all-or-nothing, and keeps the requests that wait
 * for their commit until the writer reports it (group commit: one batch settles many requests).
 */
export class RingPublisher {
  private readonly producer: RingProducer;
  private readonly acks: PendingAcks;
  /**
   * Topics of queued events the store does not hold yet: they count towards MAX_TOPICS until a commit or
   * a snapshot brings them in (storedTopicsChanged). The cap itself bounds this set.
   */
  private readonly pendingTopics = new Set<string>();
  /** Events this process has queued since it started. */
  enqueued = 0;
  rejectedQueueFull = 0;

  constructor(ring: SharedArrayBuffer, private readonly options: RingPublisherOptions) {
    this.producer = new RingProducer(ring);
    this.acks = new PendingAcks(options.ackTimeoutMs);
  }

  /** Queues the events; nobody waits for their commit (?ack=queued). */
  enqueue(events: readonly IncomingEvent[]): void {
    this.write(events, NOBODY_WAITS);
  }

  /** Queues the events and resolves once every one of them is committed. */
  publish(events: readonly IncomingEvent[]): Promise<CommitAck> {
    const requestId = this.acks.nextId();
    this.write(events, requestId);
    return this.acks.wait(requestId, events.length);
  }

  /** Applies the acks of one commit. */
  settle(acks: PackedAcks): void {
    this.acks.settle(acks);
  }

  /** Answers every waiting request with `error` (their events may still commit: a retry is a duplicate). */
  failWaiting(error: PublishError): void {
    this.acks.failAll(error);
  }

  /** The store now holds these topics (or the writer restarted and reported all of them). */
  storedTopicsChanged(topics: Iterable<string> = this.pendingTopics): void {
    for (const topic of topics) if (this.options.storedTopics.has(topic)) this.pendingTopics.delete(topic);
  }

  get waiting(): number {
    return this.acks.size;
  }

  /** The ring as the producer sees it: records queued, bytes in use, and its size. */
  queue(): { depth: number; usedBytes: number; capacityBytes: number } {
    return { depth: this.producer.depth(), usedBytes: this.producer.usedBytes(), capacityBytes: this.producer.capacity };
  }

  /** Closes the ring: the writer drains what is in it and stops. */
  closeRing(): void {
    this.producer.close();
  }

  /** Answers the requests still waiting 503 (after the consumer stopped). */
  close(): void {
    this.acks.close();
  }

  private write(events: readonly IncomingEvent[], requestId: number): void {
    const lengths = events.map(encodedLength);
    const total = lengths.reduce((sum, length) => sum + length + 8, 0);
    if (total > this.producer.maxRecordBytes) {
      throw new PublishError('REQUEST_TOO_LARGE', `request needs ${total} bytes of queue; at most ${this.producer.maxRecordBytes} fit (RING_BYTES)`);
    }
    const newTopics = this.newTopics(events);
    this.producer.begin();
    for (let i = 0; i < events.length; i++) {
      if (!writeEvent(this.producer, requestId, events[i]!, lengths[i]!)) {
        this.producer.rollback();
        this.rejectedQueueFull++;
        throw new PublishError('QUEUE_FULL', 'the queue is full: the consumer is behind; retry later');
      }
    }
    this.producer.commit();
    if (newTopics) for (const topic of newTopics) this.pendingTopics.add(topic);
    this.enqueued += events.length;
  }

  /** The topics of `events` neither stored nor queued yet; throws TOPIC_LIMIT when they would pass MAX_TOPICS. */
  private newTopics(events: readonly IncomingEvent[]): Set<string> | undefined {
    const { storedTopics, maxTopics } = this.options;
    let fresh: Set<string> | undefined;
    for (const { topic } of events) {
      if (!storedTopics.has(topic) && !this.pendingTopics.has(topic)) (fresh ??= new Set()).add(topic);
    }
    const known = storedTopics.size + this.pendingTopics.size;
    if (fresh && known + fresh.size > maxTopics) {
      throw new PublishError('TOPIC_LIMIT',
        `the request would add ${fresh.size} new topic(s) to the ${known} there are; at most ${maxTopics} are allowed (MAX_TOPICS)`);
    }
    return fresh;
  }
}
