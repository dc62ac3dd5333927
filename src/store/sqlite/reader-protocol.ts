import type { ConsumerPage, ConsumerRecord, ConsumerStatus } from '../consumers.js';
import type { EventPageQuery, PurgeHorizon, ReadableTopics, StreamPage, StreamPageQuery, TopicDetail, TopicPageQuery } from '../store.js';

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
  | { kind: 'consumer-page'; name: string; limit: number }
  | { kind: 'stream'; query: StreamPageQuery }
  /** The seq a stream starts after: the last one received before `since` (undefined: the last one stored). */
  | { kind: 'start'; since: string | undefined }
  /** Every topic (or every readable one) when `topics` is undefined. */
  | { kind: 'purge-horizon'; topics: readonly string[] | undefined; readable: ReadableTopics }
  | { kind: 'purge-horizons-above'; topics: readonly string[] | undefined; after: number; readable: ReadableTopics }
  | { kind: 'topic-details'; topics: readonly string[] }
  | { kind: 'disk-bytes' };

export type ReadRequest = Read & { id: number };

/** The answer to each kind of read. */
export type ReadAnswer =
  | { type: 'page'; id: number; body: ArrayBuffer }
  | { type: 'consumer'; id: number; consumer: ConsumerRecord | undefined }
  | { type: 'consumer-status'; id: number; consumers: ConsumerStatus[] }
  /** undefined: no such consumer. */
  | { type: 'consumer-page'; id: number; page: (Omit<ConsumerPage, 'events'> & { events: ArrayBuffer }) | undefined }
  /** A stream page; its typed arrays' buffers are transferred. */
  | { type: 'stream'; id: number; page: StreamPage }
  | { type: 'start'; id: number; after: number }
  | { type: 'purge-horizon'; id: number; horizon: PurgeHorizon }
  | { type: 'purge-horizons-above'; id: number; horizons: number[] }
  | { type: 'topic-details'; id: number; topics: TopicDetail[] }
  | { type: 'disk-bytes'; id: number; bytes: number };

export type ReaderMessage =
  | { type: 'ready' }
  /** The page as the UTF-8 bytes of a JSON array. */
  | ReadAnswer
  /** The read failed; `code` is SQLite's (SQLITE_IOERR, …), for the log. */
  | { type: 'failed'; id: number; message: string; code: string };
