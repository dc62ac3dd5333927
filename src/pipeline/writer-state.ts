import type { DedupIndexFigures, PurgeReport, StoreCounters } from '../store/store.js';
import type { WriterMessage } from './writer-protocol.js';
import { TopicCounts } from './topic-counts.js';

/**
 * What the writer's messages tell the HTTP thread: the store-wide counters and topics, this
 * ring's committed records, the last commits, and whether the store is failing. The one copy of it on
 * this thread, read by /stats and /metrics without touching the store.
 */
export class WriterState {
  counters: StoreCounters = { uniqueProcessed: 0, duplicateDropped: 0 };
  /** Stored events per topic, store-wide. */
  readonly topicEvents = new TopicCounts();
  /** Records of this process's ring that a consumer reported committed (or passed over as committed). */
  committedRecords = 0;
  /** Why the store is refusing commits (its code and a message safe to show), until a commit succeeds. */
  storeError: { code: string; message: string; retryInMs: number } | undefined;
  /** The dedup index's figures and the last purge, from the worker's last upkeep report. */
  index: DedupIndexFigures | undefined;
  lastPurge: PurgeReport | undefined;
  batches = 0;
  lastBatchSize = 0;
  lastCommitMs = 0;

  apply(message: WriterMessage): void {
    switch (message.type) {
      case 'ready':
        this.counters = message.counters;
        this.topicEvents.reset(message.topicEvents);
        this.committedRecords += message.skippedRecords;
        break;
      case 'committed':
        this.storeError = undefined;
        this.counters = message.counters;
        this.committedRecords += message.records;
        for (const [topic, events] of message.topicEvents) this.topicEvents.add(topic, events);
        this.batches++;
        this.lastBatchSize = message.records;
        this.lastCommitMs = message.commitMs;
        break;
      case 'snapshot':
        this.storeError = undefined;
        this.counters = message.counters;
        for (const [topic, events] of message.topicEvents) this.topicEvents.set(topic, events);
        break;
      case 'upkeep':
        this.index = message.index;
        this.lastPurge = message.lastPurge;
        for (const [topic, events] of message.topicEvents) this.topicEvents.set(topic, events);
        break;
      case 'store-error':
        this.storeError = { code: message.code, message: message.message, retryInMs: message.retryInMs };
        break;
    }
  }
}
