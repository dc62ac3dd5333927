import type { Logger } from '../../logger.js';
import { RESTART_BACKOFF, SupervisedWorker } from '../../lib/supervised-worker.js';
import { ReadGate } from '../read-gate.js';
import type { ConsumerPage, ConsumerRecord, ConsumerStatus } from '../consumers.js';
import { READER_WORKER_ENTRY, type AnswerTo, type Read, type ReaderMessage, type ReaderWorkerData, type ReadRequest } from './reader-protocol.js';
import { StoreError, type ConsumerPageBounds, type EventPageQuery, type EventReader, type StreamPage, type StreamPageQuery, type TopicPageQuery, type PurgeHorizon, type ReadableTopics, type TopicDetail } from '../store.js';

/** Reads waiting for the worker beyond the one it runs; more get 503 READERS_BUSY at once. */
export const SQLITE_MAX_QUEUED_READS = 16;
const MAX_WAIT_MS = 5_000;

/**
 * /events and /topics on SQLite, served by the reader worker (workers/reader.ts) so that reads never run
 * on the HTTP thread. The worker runs one read at a time; the gate bounds the reads waiting for it. A
 * worker that dies fails its read (503) and is restarted with backoff (SupervisedWorker); reads arriving
 * meanwhile get 503. It keeps no state, so unlike the writer it is never given up on.
 */
export class SqliteWorkerReader implements EventReader {
  private readonly worker: SupervisedWorker<ReadRequest, ReaderMessage>;
  private readonly gate = new ReadGate({ slots: 1, maxQueued: SQLITE_MAX_QUEUED_READS, maxWaitMs: MAX_WAIT_MS });

  private constructor(data: ReaderWorkerData, log: Logger) {
    this.worker = new SupervisedWorker({
      entry: READER_WORKER_ENTRY,
      name: 'reader',
      workerData: () => data,
      policy: RESTART_BACKOFF,
      log,
      isReady: (message) => message.type === 'ready',
      replyOf: (message) => message.type === 'ready' ? undefined
        : message.type === 'failed' ? { id: message.id, error: new StoreError(`the read failed: ${message.message}`, message.code) }
          : { id: message.id, value: message },
      unavailable: () => new StoreError('the reader worker is restarting', 'READER_RESTARTING'),
      lost: () => new StoreError('the reader worker exited', 'READER_EXITED'),
    });
  }

  /** Resolves once the worker has opened the database; rejects with its error if it cannot. */
  static async open(data: ReaderWorkerData, log: Logger): Promise<SqliteWorkerReader> {
    const reader = new SqliteWorkerReader(data, log);
    await reader.worker.start();
    return reader;
  }

  async page(query: EventPageQuery): Promise<Uint8Array> {
    return new Uint8Array((await this.read({ kind: 'events', query })).body);
  }

  async topics(query: TopicPageQuery): Promise<Uint8Array> {
    return new Uint8Array((await this.read({ kind: 'topics', query })).body);
  }

  async consumer(name: string): Promise<ConsumerRecord | undefined> {
    return (await this.read({ kind: 'consumer', name })).consumer;
  }

  async consumerStatus(name?: string): Promise<ConsumerStatus[]> {
    return (await this.read({ kind: 'consumer-status', name })).consumers;
  }

  async consumerPage(name: string, limit: number, bounds?: ConsumerPageBounds): Promise<ConsumerPage | undefined> {
    const { page } = await this.read({ kind: 'consumer-page', name, limit, bounds });
    return page && { ...page, events: new Uint8Array(page.events) };
  }

  async streamPage(query: StreamPageQuery): Promise<StreamPage> {
    return (await this.read({ kind: 'stream', query })).page;
  }

  async startAfter(since: string | undefined): Promise<number> {
    return (await this.read({ kind: 'start', since })).after;
  }

  async firstReceivedAfter(until: string): Promise<number | undefined> {
    return (await this.read({ kind: 'first-after', until })).seq;
  }

  async purgeHorizon(topics: readonly string[] | undefined, readable?: ReadableTopics): Promise<PurgeHorizon> {
    return (await this.read({ kind: 'purge-horizon', topics, readable })).horizon;
  }

  async purgeHorizonsAbove(topics: readonly string[] | undefined, after: number, readable?: ReadableTopics): Promise<number[]> {
    return (await this.read({ kind: 'purge-horizons-above', topics, after, readable })).horizons;
  }

  async topicDetails(topics: readonly string[]): Promise<TopicDetail[]> {
    return (await this.read({ kind: 'topic-details', topics })).topics;
  }

  async diskBytes(): Promise<number> {
    return (await this.read({ kind: 'disk-bytes' })).bytes;
  }

  close(): Promise<void> {
    return this.worker.stop();
  }

  /** Sends a read; its answer's type follows from its kind (ReadAnswers), which the worker's handlers are typed to keep. */
  private read<K extends Read['kind']>(request: Extract<Read, { kind: K }>): Promise<AnswerTo<K>> {
    return this.gate.run(() => this.worker.request<AnswerTo<K>>((id) => ({ id, ...request })));
  }
}
