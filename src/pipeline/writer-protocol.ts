import type { Config } from '../config.js';
import type { ConsumerCommand, ConsumerOutcome } from '../store/consumers.js';
import type { DedupIndexFigures, PurgeReport, SeqRange, StoreCounters } from '../store/store.js';

/*
 * The writer's protocol: its entry module, the data it starts with, and every message it posts
 * back, and the one kind of message it is sent. Both sides import this module and nothing else of each
 * other. Events themselves travel through the ring, not through these messages.
 */

/** The worker's entry: workers/ stays at the top level (the design card); this is the one place naming it. */
export const WRITER_WORKER_ENTRY = new URL('../../workers/writer.js', import.meta.url);

/** The settings the writer needs, and no others: listed once, and the type follows the list. */
export const WRITER_SETTINGS = [
  'store', 'dbPath', 'databaseUrl', 'pgStatementTimeoutMs', 'pgWriteConnections', 'replicaId', 'synchronous', 'dbMaxBytes', 'batchMax', 'batchLingerMs', 'logLevel',
  'retention', 'dedupWindowMs', 'dedupHotKeys', 'fault',
] as const satisfies readonly (keyof Config)[];

export type WriterConfig = Pick<Config, (typeof WRITER_SETTINGS)[number]>;

export interface WriterWorkerData {
  ring: SharedArrayBuffer;
  /** Identifies this process's ring; the store keeps (epoch, position) of the last commit beside the events. */
  epoch: string;
  config: WriterConfig;
  /**
   * Whether the worker waits for a store that is away (PostgreSQL unreachable) instead of failing. A
   * restarted worker does, so a database that is away never counts as crashes; the first start fails
   * fast, so a wrong DATABASE_URL stops the process.
   */
  waitForStore: boolean;
}

export interface ReadyMessage {
  type: 'ready';
  counters: StoreCounters;
  /** Stored events per topic, every topic: sent once, when a consumer starts. */
  topicEvents: [topic: string, events: number][];
  /** Records a crashed predecessor had committed but not released; the new worker passed over them. */
  skippedRecords: number;
}

export interface CommittedMessage {
  type: 'committed';
  /** One per publish request with events in the batch. */
  acks: PackedAcks;
  records: number;
  counters: StoreCounters;
  /** Events this commit stored per topic. */
  topicEvents: [topic: string, events: number][];
  /** The seqs this commit stored; undefined when every event was a duplicate. */
  seqRange: SeqRange | undefined;
  commitMs: number;
  /** When the worker sent this report (performance.timeOrigin + performance.now(): one clock for both threads). */
  reportedAt: number;
}

export interface StoreErrorMessage {
  type: 'store-error';
  /** Safe to show to clients (no hosts, ports or SQL states); the worker logged the details. */
  message: string;
  code: string;
  /** When the worker tries again: clients are told to retry no sooner (Retry-After). */
  retryInMs: number;
}

/** A fresh store-wide view, sent about once a second when other replicas write to the same store. */
export interface SnapshotMessage {
  type: 'snapshot';
  counters: StoreCounters;
  /** Store-wide stored events of the topics that changed since the last snapshot; the others are as they were. */
  topicEvents: [topic: string, events: number][];
}

/**
 * A durable-consumer write, sent to the worker because it is the store's only writer (on SQLite, the only
 * connection that may take the write lock). Applied between batches in a transaction of its own.
 */
export interface ConsumerCommandRequest {
  type: 'consumer-command';
  /** Correlates the answer. */
  id: number;
  command: ConsumerCommand;
}

/** The answer to a ConsumerCommandRequest: its outcome, or why the store could not apply it. */
export type ConsumerCommandResult =
  | { type: 'consumer-result'; id: number; outcome: ConsumerOutcome }
  | { type: 'consumer-result'; id: number; error: { message: string; code: string } };

/** After background upkeep (purging, sealing the dedup index): the index's figures and what was purged. */
export interface UpkeepMessage {
  type: 'upkeep';
  index: DedupIndexFigures;
  lastPurge: PurgeReport | undefined;
  /** Retained events of the topics a purge changed since the last upkeep message (store-wide). */
  topicEvents: [topic: string, events: number][];
}

export type WriterMessage =
  | ReadyMessage | CommittedMessage | StoreErrorMessage | SnapshotMessage | UpkeepMessage | ConsumerCommandResult;

/** One publish request's share of a commit. */
export interface RequestAck {
  requestId: number;
  unique: number;
  duplicates: number;
}

declare const packed: unique symbol;
/**
 * A commit's acks as posted: flat (requestId, unique, duplicates) triples in one number array, which a
 * postMessage copies far faster than as many objects. Only packAcks and unpackAcks know the layout.
 */
export type PackedAcks = readonly number[] & { readonly [packed]: true };

export function packAcks(acks: Iterable<RequestAck>): PackedAcks {
  const flat: number[] = [];
  for (const { requestId, unique, duplicates } of acks) flat.push(requestId, unique, duplicates);
  return flat as unknown as PackedAcks;
}

export function* unpackAcks(acks: PackedAcks): Generator<RequestAck> {
  for (let i = 0; i < acks.length; i += 3) yield { requestId: acks[i]!, unique: acks[i + 1]!, duplicates: acks[i + 2]! };
}
