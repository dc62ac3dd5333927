import type { StoreKind, Synchronous } from '../config.js';

/*
 * The only shapes that cross the thread boundary between the HTTP thread and the consumer worker.
 * Events themselves travel through the ring, not through these messages.
 */

export interface ConsumerWorkerData {
  ring: SharedArrayBuffer;
  /** Identifies this process's ring; the store keeps (epoch, position) of the last commit beside the events. */
  epoch: string;
  store: StoreKind;
  dbPath: string;
  databaseUrl: string;
  replicaId: string;
  synchronous: Synchronous;
  dbMaxBytes: number;
  batchMax: number;
  batchLingerMs: number;
  logLevel: string;
  /** Test-only fault injection, see workers/faults.ts. */
  fault?: string;
}

/** Store-wide durable counters. */
export interface StoreCounters {
  uniqueProcessed: number;
  duplicateDropped: number;
}

export interface ReadyMessage {
  type: 'ready';
  counters: StoreCounters;
  /** Stored events per topic, every topic: sent once, when a consumer starts. */
  topics: [topic: string, events: number][];
  /** Records a crashed predecessor had committed but not released; the new worker passed over them. */
  skippedRecords: number;
}

export interface CommittedMessage {
  type: 'committed';
  /** Flat triples (requestId, unique, duplicates), one per request with events in the batch. */
  acks: number[];
  records: number;
  counters: StoreCounters;
  /** Events this commit stored per topic. */
  perTopic: [topic: string, events: number][];
  commitMs: number;
}

export interface StoreErrorMessage {
  type: 'store-error';
  message: string;
  code: string;
  retryInMs: number;
}

/** A fresh store-wide view, sent about once a second when other replicas write to the same store. */
export interface SnapshotMessage {
  type: 'snapshot';
  counters: StoreCounters;
  /** Store-wide stored events of the topics that changed since the last snapshot; the others are as they were. */
  topics: [topic: string, events: number][];
}

export type ConsumerMessage = ReadyMessage | CommittedMessage | StoreErrorMessage | SnapshotMessage;
