import { Worker } from 'node:worker_threads';
import type { Logger } from '../../logger.js';
import { ReadGate } from '../read-gate.js';
import type { ConsumerPage, ConsumerRecord, ConsumerStatus } from '../consumers.js';
import { READER_WORKER_ENTRY, type AnswerTo, type Read, type ReadAnswer, type ReaderMessage, type ReaderWorkerData, type ReadRequest } from './reader-protocol.js';
import { StoreError, type ConsumerPageBounds, type EventPageQuery, type EventReader, type StreamPage, type StreamPageQuery, type TopicPageQuery, type PurgeHorizon, type ReadableTopics, type TopicDetail } from '../store.js';

/** Reads waiting for the worker beyond the one it runs; more get 503 READERS_BUSY at once. */
export const SQLITE_MAX_QUEUED_READS = 16;
const MAX_WAIT_MS = 5_000;
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 5_000;

/** The answer of the type `T` names. */

/**
 * /events and /topics on SQLite, served by the reader worker (workers/reader.ts) so that reads never run
 * on the HTTP thread. The worker runs one read at a time; the gate bounds the reads waiting for it. A
 * worker that dies fails its read (503) and is restarted with backoff; reads arriving meanwhile get 503.
 * It keeps no state, so unlike the consumer it is never given up on.
 */
export class SqliteWorkerReader implements EventReader {
  private worker: Worker | undefined;
  private readonly inFlight = new Map<number, { resolve: (answer: ReadAnswer) => void; reject: (error: Error) => void }>();
  private readonly gate = new ReadGate({ slots: 1, maxQueued: SQLITE_MAX_QUEUED_READS, maxWaitMs: MAX_WAIT_MS });
  private nextId = 1;
  private restartDelay = RESTART_MIN_MS;
  private restartTimer: NodeJS.Timeout | undefined;
  private closing = false;

  private constructor(private readonly data: ReaderWorkerData, private readonly log: Logger) {}

  /** Resolves once the worker has opened the database; rejects with its error if it cannot. */
  static async open(data: ReaderWorkerData, log: Logger): Promise<SqliteWorkerReader> {
    const reader = new SqliteWorkerReader(data, log);
    await reader.spawn();
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

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.restartTimer);
    await this.worker?.terminate();
  }

  /** Sends a read; its answer's type follows from its kind (ReadAnswers). */
  private read<K extends Read['kind']>(request: Extract<Read, { kind: K }>): Promise<AnswerTo<K>> {
    return this.gate.run(() => new Promise<AnswerTo<K>>((resolve, reject) => {
      if (!this.worker) {
        reject(new StoreError('the reader worker is restarting', 'READER_RESTARTING'));
        return;
      }
      const id = this.nextId++;
      // The id ties this answer to this read, and the worker's handlers are typed to answer kind K with AnswerTo<K>.
      this.inFlight.set(id, { resolve: (answer) => resolve(answer as unknown as AnswerTo<K>), reject });
      this.worker.postMessage({ id, ...request } satisfies ReadRequest);
    }));
  }

  private spawn(): Promise<void> {
    const worker = new Worker(READER_WORKER_ENTRY, { workerData: this.data, name: 'reader' });
    return new Promise((resolve, reject) => {
      const exited = (code: number) => reject(new Error(`reader worker exited with code ${code}`));
      worker.once('error', reject);
      worker.once('exit', exited);
      worker.once('message', () => {
        worker.off('error', reject);
        worker.off('exit', exited);
        worker.on('message', (message: ReaderMessage) => this.answer(message));
        worker.on('error', (error) => this.log.error({ err: error }, 'reader worker failed'));
        worker.on('exit', (code) => this.exited(code));
        if (this.closing) void worker.terminate();
        this.worker = worker;
        this.restartDelay = RESTART_MIN_MS;
        resolve();
      });
    });
  }

  private answer(message: ReaderMessage): void {
    if (message.type === 'ready') return;
    const waiter = this.inFlight.get(message.id);
    this.inFlight.delete(message.id);
    if (message.type === 'failed') waiter?.reject(new StoreError(`the read failed: ${message.message}`, message.code));
    else waiter?.resolve(message);
  }

  private exited(code: number): void {
    this.worker = undefined;
    const failed = new StoreError(`the reader worker exited with code ${code}`, 'READER_EXITED');
    for (const { reject } of this.inFlight.values()) reject(failed);
    this.inFlight.clear();
    if (this.closing) return;
    this.log.warn({ code, delay: this.restartDelay }, 'restarting the reader worker');
    this.restartTimer = setTimeout(() => {
      this.spawn().catch((error: unknown) => {
        this.log.error({ err: error }, 'the reader worker did not start');
        this.exited(-1);
      });
    }, this.restartDelay);
    this.restartDelay = Math.min(this.restartDelay * 2, RESTART_MAX_MS);
  }
}
