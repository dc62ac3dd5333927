import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Config } from '../config.js';
import type { IncomingEvent } from '../event.js';
import type { Logger } from '../logger.js';
import { encodedLength, writeEvent } from '../ring/event-codec.js';
import { createRingBuffer, RingProducer } from '../ring/ring.js';
import { ConsumerSupervisor } from './consumer-supervisor.js';
import { PublishError } from './errors.js';
import type { ConsumerMessage, StoreCounters } from './messages.js';
import { PendingAcks, type CommitAck } from './pending-acks.js';
import { TopicCounts } from './topic-counts.js';

export type { CommitAck };

export interface PipelineStats {
  /** Store-wide committed events plus the events this replica has queued but not yet committed. */
  received: number;
  /** Events this replica accepted since it started. */
  replicaReceived: number;
  counters: StoreCounters;
  /** Topics with stored events. */
  topicCount: number;
  queueDepth: number;
  ringUsedBytes: number;
  ringCapacityBytes: number;
  pendingAcks: number;
  rejectedQueueFull: number;
  consumer: {
    ready: boolean;
    reason: string | undefined;
    restarts: number;
    batches: number;
    lastBatchSize: number;
    lastCommitMs: number;
  };
}

/**
 * The HTTP thread's end of the pipeline: writes accepted events into the ring, keeps the consumer worker
 * alive, and turns the worker's commit reports into publish acknowledgements and the /stats snapshot.
 * Emits `commit` (records, commitMs) per committed batch, for metrics.
 */
export class Pipeline extends EventEmitter<{ commit: [records: number, commitMs: number] }> {
  private readonly producer: RingProducer;
  private readonly acks: PendingAcks;
  private readonly supervisor: ConsumerSupervisor;
  private counters: StoreCounters = { uniqueProcessed: 0, duplicateDropped: 0 };
  private readonly topics = new TopicCounts();
  /**
   * Topics of queued events that are not in `topics` yet: they count towards MAX_TOPICS until a commit or
   * a snapshot brings them in. The cap itself bounds this set.
   */
  private readonly pendingTopics = new Set<string>();
  private readonly maxTopics: number;
  private enqueued = 0;
  /** Events of this process's ring that a consumer reported committed (or passed over as committed). */
  private committedHere = 0;
  private rejectedQueueFull = 0;
  private storeError: string | undefined;
  private batches = 0;
  private lastBatchSize = 0;
  private lastCommitMs = 0;

  private constructor(config: Config, private readonly log: Logger) {
    super();
    this.maxTopics = config.maxTopics;
    const ring = createRingBuffer(config.ringBytes);
    this.producer = new RingProducer(ring);
    this.acks = new PendingAcks(config.ackTimeoutMs);
    this.supervisor = new ConsumerSupervisor({
      log,
      workerData: {
        ring,
        epoch: randomUUID(),
        store: config.store,
        dbPath: config.dbPath,
        databaseUrl: config.databaseUrl,
        replicaId: config.replicaId,
        synchronous: config.synchronous,
        dbMaxBytes: config.dbMaxBytes,
        batchMax: config.batchMax,
        batchLingerMs: config.batchLingerMs,
        logLevel: config.logLevel,
        fault: process.env.AGGREGATOR_FAULT,
      },
      onMessage: (message) => this.onMessage(message),
      onCrash: () => this.acks.failAll(new PublishError('CONSUMER_UNAVAILABLE', 'consumer worker crashed; retry')),
    });
  }

  /** Starts the consumer and resolves once the store is open; rejects if it cannot be opened. */
  static async start(config: Config, log: Logger): Promise<Pipeline> {
    const pipeline = new Pipeline(config, log);
    await pipeline.supervisor.start();
    return pipeline;
  }

  /** Why publishes are refused right now, or undefined when the pipeline is ready. */
  notReadyReason(): string | undefined {
    return this.supervisor.downReason() ?? (this.storeError && `store error: ${this.storeError}`);
  }

  /**
   * Puts all of `events` into the ring or none of them. With `waitForCommit` it resolves once every one
   * is committed, otherwise once they are queued. Throws PublishError when it cannot take them.
   */
  publish(events: readonly IncomingEvent[], waitForCommit: boolean): Promise<CommitAck> | number {
    const down = this.supervisor.downReason();
    if (down !== undefined) throw new PublishError('CONSUMER_UNAVAILABLE', down);
    if (this.storeError !== undefined) throw new PublishError('STORE_UNAVAILABLE', `store error: ${this.storeError}`);
    const lengths = events.map(encodedLength);
    const total = lengths.reduce((sum, length) => sum + length + 8, 0);
    if (total > this.producer.maxRecordBytes) {
      throw new PublishError('REQUEST_TOO_LARGE', `request needs ${total} bytes of queue; at most ${this.producer.maxRecordBytes} fit (RING_BYTES)`);
    }
    const newTopics = this.newTopics(events);
    const requestId = waitForCommit ? this.acks.nextId() : 0;
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
    return waitForCommit ? this.acks.wait(requestId, events.length) : events.length;
  }

  /** The topics with the most stored events (at most TOP_TOPICS), most first. */
  topTopics(): [topic: string, events: number][] {
    return this.topics.top();
  }

  stats(): PipelineStats {
    const reason = this.notReadyReason();
    return {
      received: this.counters.uniqueProcessed + this.counters.duplicateDropped + this.enqueued - this.committedHere,
      replicaReceived: this.enqueued,
      counters: this.counters,
      topicCount: this.topics.size,
      queueDepth: this.producer.depth(),
      ringUsedBytes: this.producer.usedBytes(),
      ringCapacityBytes: this.producer.capacity,
      pendingAcks: this.acks.size,
      rejectedQueueFull: this.rejectedQueueFull,
      consumer: {
        ready: reason === undefined,
        reason,
        restarts: this.supervisor.restarts,
        batches: this.batches,
        lastBatchSize: this.lastBatchSize,
        lastCommitMs: this.lastCommitMs,
      },
    };
  }

  /** Closes the ring, lets the consumer commit everything in it, and waits for the worker to exit. */
  async stop(timeoutMs = 30_000): Promise<void> {
    this.producer.close();
    await this.supervisor.stop(timeoutMs);
    this.acks.close();
  }

  /** The topics of `events` neither stored nor queued yet; throws TOPIC_LIMIT when they would pass MAX_TOPICS. */
  private newTopics(events: readonly IncomingEvent[]): Set<string> | undefined {
    let fresh: Set<string> | undefined;
    for (const { topic } of events) {
      if (!this.topics.has(topic) && !this.pendingTopics.has(topic)) (fresh ??= new Set()).add(topic);
    }
    const known = this.topics.size + this.pendingTopics.size;
    if (fresh && known + fresh.size > this.maxTopics) {
      throw new PublishError('TOPIC_LIMIT',
        `the request would add ${fresh.size} new topic(s) to the ${known} there are; at most ${this.maxTopics} are allowed (MAX_TOPICS)`);
    }
    return fresh;
  }

  private onMessage(message: ConsumerMessage): void {
    switch (message.type) {
      case 'ready':
        this.counters = message.counters;
        this.topics.reset(message.topics);
        for (const topic of this.pendingTopics) if (this.topics.has(topic)) this.pendingTopics.delete(topic);
        this.committedHere += message.skippedRecords;
        if (message.skippedRecords > 0) {
          this.log.warn({ skippedRecords: message.skippedRecords }, 'passed over records a crashed consumer had committed');
        }
        break;
      case 'committed':
        this.storeError = undefined;
        this.counters = message.counters;
        this.committedHere += message.records;
        for (const [topic, events] of message.perTopic) {
          this.topics.add(topic, events);
          this.pendingTopics.delete(topic);
        }
        this.emit('commit', message.records, message.commitMs);
        this.batches++;
        this.lastBatchSize = message.records;
        this.lastCommitMs = message.commitMs;
        this.acks.settle(message.acks);
        break;
      case 'snapshot':
        this.storeError = undefined;
        this.counters = message.counters;
        for (const [topic, events] of message.topics) {
          this.topics.set(topic, events);
          this.pendingTopics.delete(topic);
        }
        break;
      case 'store-error':
        this.storeError = `${message.code}: ${message.message}`;
        this.acks.failAll(new PublishError('STORE_UNAVAILABLE', `store error (${this.storeError}); retry`, Math.max(1, Math.ceil(message.retryInMs / 1000))));
        break;
    }
  }
}
