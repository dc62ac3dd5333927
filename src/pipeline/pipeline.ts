import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Config } from '../config.js';
import type { IncomingEvent } from '../event.js';
import type { Logger } from '../logger.js';
import { createRingBuffer } from '../ring/ring.js';
import type { ConsumerCommand, ConsumerOutcome } from '../store/consumers.js';
import type { DedupIndexFigures, PurgeReport, StoreCounters } from '../store/store.js';
import { WRITER_SETTINGS, type CommittedMessage, type WriterConfig, type WriterMessage } from './writer-protocol.js';
import { WriterState } from './writer-state.js';
import { WriterSupervisor } from './writer-supervisor.js';
import { PublishError } from './errors.js';
import type { CommitAck } from './pending-acks.js';
import { RingPublisher } from './ring-publisher.js';

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
  /** The dedup index's figures, once the writer has reported them. */
  index: DedupIndexFigures | undefined;
  lastPurge: PurgeReport | undefined;
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
 * The HTTP thread's end of the event path: accepted events go into the ring (RingPublisher), the consumer
 * worker runs under a supervisor, and its messages update the writer state and settle waiting
 * publishes. Emits `commit` with each commit's report (records, timing, the seq range it stored).
 */
export class Pipeline extends EventEmitter<{ commit: [CommittedMessage] }> {
  private readonly publisher: RingPublisher;
  private readonly supervisor: WriterSupervisor;
  private readonly state = new WriterState();

  private constructor(config: Config, private readonly log: Logger) {
    super();
    const ring = createRingBuffer(config.ringBytes);
    this.publisher = new RingPublisher(ring, {
      ackTimeoutMs: config.ackTimeoutMs, maxTopics: config.maxTopics, storedTopics: this.state.topicEvents,
    });
    const writerConfig = Object.fromEntries(WRITER_SETTINGS.map((key) => [key, config[key]])) as WriterConfig;
    this.supervisor = new WriterSupervisor({
      log,
      workerData: { ring, epoch: randomUUID(), config: writerConfig, waitForStore: false },
      onMessage: (message) => this.onMessage(message),
      onCrash: () => this.publisher.failWaiting(new PublishError('CONSUMER_UNAVAILABLE', 'consumer worker crashed; retry')),
    });
  }

  /** Starts the writer and resolves once it is ready; rejects if the store cannot be opened. */
  static async start(config: Config, log: Logger): Promise<Pipeline> {
    const pipeline = new Pipeline(config, log);
    await pipeline.supervisor.start();
    return pipeline;
  }

  /** Why publishes are refused right now, or undefined when the pipeline is ready. */
  notReadyReason(): string | undefined {
    return this.notReady()?.message;
  }

  /** The error a publish gets right now (its code, message and Retry-After), or undefined when ready. */
  notReady(): PublishError | undefined {
    const down = this.supervisor.downReason();
    if (down !== undefined) return new PublishError('CONSUMER_UNAVAILABLE', down);
    const reason = this.storeErrorReason();
    return reason === undefined ? undefined : new PublishError('STORE_UNAVAILABLE', reason, retryAfterSeconds(this.state.storeError!.retryInMs));
  }

  /** Queues all of `events` or none (?ack=queued): returns how many. Throws PublishError when it cannot. */
  enqueue(events: readonly IncomingEvent[]): number {
    this.refuseUnlessReady();
    this.publisher.enqueue(events);
    return events.length;
  }

  /** Queues all of `events` or none, and resolves once every one is committed. Throws PublishError when it cannot. */
  publish(events: readonly IncomingEvent[]): Promise<CommitAck> {
    this.refuseUnlessReady();
    return this.publisher.publish(events);
  }

  /**
   * Creates, commits or deletes a durable consumer through the writer worker, the store's one writer.
   * Throws PublishError when the worker is not running, StoreError when the store refused the transaction.
   */
  consumerCommand(command: ConsumerCommand): Promise<ConsumerOutcome> {
    this.refuseUnlessReady();
    return this.supervisor.consumerCommand(command);
  }

  /** The topics with the most stored events (at most TOP_TOPICS), most first. */
  topTopics(): [topic: string, events: number][] {
    return this.state.topicEvents.top();
  }

  /** The topics `accepts` takes with the most stored events (at most TOP_TOPICS), most first, and how many it takes. */
  topTopicsWhere(accepts: (topic: string) => boolean): { top: [topic: string, events: number][]; count: number } {
    return this.state.topicEvents.topWhere(accepts);
  }

  stats(): PipelineStats {
    const reason = this.notReadyReason();
    const { state, publisher } = this;
    const queue = publisher.queue();
    return {
      received: state.counters.uniqueProcessed + state.counters.duplicateDropped + publisher.enqueued - state.committedRecords,
      replicaReceived: publisher.enqueued,
      counters: state.counters,
      topicCount: state.topicEvents.size,
      queueDepth: queue.depth,
      ringUsedBytes: queue.usedBytes,
      ringCapacityBytes: queue.capacityBytes,
      pendingAcks: publisher.waiting,
      rejectedQueueFull: publisher.rejectedQueueFull,
      index: state.index,
      lastPurge: state.lastPurge,
      consumer: {
        ready: reason === undefined,
        reason,
        restarts: this.supervisor.restarts,
        batches: state.batches,
        lastBatchSize: state.lastBatchSize,
        lastCommitMs: state.lastCommitMs,
      },
    };
  }

  /** Closes the ring, lets the writer commit everything in it, and waits for the worker to exit. */
  async stop(timeoutMs = 30_000): Promise<void> {
    this.publisher.closeRing();
    await this.supervisor.stop(timeoutMs);
    this.publisher.close();
  }

  private refuseUnlessReady(): void {
    const error = this.notReady();
    if (error) throw error;
  }

  private storeErrorReason(): string | undefined {
    const { storeError } = this.state;
    return storeError && `store error: ${storeError.code}: ${storeError.message}`;
  }

  private onMessage(message: WriterMessage): void {
    this.state.apply(message);
    switch (message.type) {
      case 'ready':
        this.publisher.storedTopicsChanged();
        if (message.skippedRecords > 0) {
          this.log.warn({ skippedRecords: message.skippedRecords }, 'passed over records a crashed consumer had committed');
        }
        break;
      case 'committed':
        this.publisher.storedTopicsChanged(message.topicEvents.map(([topic]) => topic));
        this.publisher.settle(message.acks);
        this.emit('commit', message);
        break;
      case 'snapshot':
      case 'upkeep':
        this.publisher.storedTopicsChanged(message.topicEvents.map(([topic]) => topic));
        break;
      case 'store-error':
        this.publisher.failWaiting(new PublishError('STORE_UNAVAILABLE',
          `store error (${message.code}: ${message.message}); retry`, retryAfterSeconds(message.retryInMs)));
        break;
    }
  }
}

/** Retry-After in whole seconds, no sooner than the consumer's next attempt. */
const retryAfterSeconds = (retryInMs: number): number => Math.max(1, Math.ceil(retryInMs / 1000));
