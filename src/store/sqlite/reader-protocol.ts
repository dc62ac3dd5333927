import type { ConsumerPage, ConsumerRecord, ConsumerStatus } from '../consumers.js';
import type { ConsumerPageBounds, EventPageQuery, PurgeHorizon, ReadableTopics, StreamPage, StreamPageQuery, TopicDetail, TopicPageQuery } from '../store.js';

/*
 * The SQLite reader worker's protocol: its entry module, its start data and every message both ways. Both
 * sides import this module and nothing else of each other. Pages come back as bytes in a transferred
 * ArrayBuffer: moved, not copied.
 */

/** The worker's entry, in the top-level workers/ beside the consumer. */
export const READER_WORKER_ENTRY = new URL('../../../workers/reader.js', import.meta.url);

export interface ReaderWorkerData {
  dbPath: string;
  maxPageBytes: number;
}

/** A read, without the id that correlates it with its answer. */
export type Read =
  | { kind: 'events'; query: EventPageQuery }
  | { kind: 'topics'; query: TopicPageQuery }
  | { kind: 'consumer'; name: string }
  /** Every consumer when `name` is undefined. */
  | { kind: 'consumer-status'; name: string | undefined }
  | { kind: 'consumer-page'; name: string; limit: number; bounds: ConsumerPageBounds | undefined }
  | { kind: 'stream'; query: StreamPageQuery }
  /** The seq a stream starts after: the last one received before `since` (undefined: the last one stored). */
  | { kind: 'start'; since: string | undefined }
  /** The seq a time range ends before: the first one received after `until`. */
  | { kind: 'first-after'; until: string }
  /** Every topic (or every readable one) when `topics` is undefined. */
  | { kind: 'purge-horizon'; topics: readonly string[] | undefined; readable: ReadableTopics }
  | { kind: 'purge-horizons-above'; topics: readonly string[] | undefined; after: number; readable: ReadableTopics }
  | { kind: 'topic-details'; topics: readonly string[] }
  | { kind: 'disk-bytes' };

export type ReadRequest = Read & { id: number };

/** What each kind of read answers: the worker posts it with the read's id, and the caller's type follows the kind. */
export interface ReadAnswers {
  /** The page as the UTF-8 bytes of a JSON array. */
  events: { type: 'page'; body: ArrayBuffer };
  topics: { type: 'page'; body: ArrayBuffer };
  consumer: { type: 'consumer'; consumer: ConsumerRecord | undefined };
  'consumer-status': { type: 'consumer-status'; consumers: ConsumerStatus[] };
  /** undefined: no such consumer. */
  'consumer-page': { type: 'consumer-page'; page: (Omit<ConsumerPage, 'events'> & { events: ArrayBuffer }) | undefined };
  /** A stream page; its typed arrays' buffers are transferred. */
  stream: { type: 'stream'; page: StreamPage };
  start: { type: 'start'; after: number };
  'first-after': { type: 'first-after'; seq: number | undefined };
  'purge-horizon': { type: 'purge-horizon'; horizon: PurgeHorizon };
  'purge-horizons-above': { type: 'purge-horizons-above'; horizons: number[] };
  'topic-details': { type: 'topic-details'; topics: TopicDetail[] };
  'disk-bytes': { type: 'disk-bytes'; bytes: number };
}

/** The answer to a read of kind K, as posted. */
export type AnswerTo<K extends Read['kind']> = ReadAnswers[K] & { id: number };
export type ReadAnswer = AnswerTo<Read['kind']>;

export type ReaderMessage =
  | { type: 'ready' }
  | ReadAnswer
  /** The read failed; `code` is SQLite's (SQLITE_IOERR, …), for the log. */
  | { type: 'failed'; id: number; message: string; code: string };
