import type { EventPageQuery, StreamPage, StreamPageQuery, TopicPageQuery } from './store.js';

/*
 * The SQLite reader worker's protocol: its entry module, its start data and every message both ways. Both
 * sides import this module and nothing else of each other. Pages come back as bytes in a transferred
 * ArrayBuffer: moved, not copied.
 */

/** The worker's entry, in the top-level workers/ beside the consumer. */
export const READER_WORKER_ENTRY = new URL('../../workers/reader.js', import.meta.url);

export interface ReaderWorkerData {
  dbPath: string;
  maxPageBytes: number;
}

export type ReadRequest =
  | { id: number; kind: 'events'; query: EventPageQuery }
  | { id: number; kind: 'topics'; query: TopicPageQuery }
  | { id: number; kind: 'stream'; query: StreamPageQuery }
  | { id: number; kind: 'start'; since: string | undefined };

export type ReaderMessage =
  | { type: 'ready' }
  /** The page as the UTF-8 bytes of a JSON array. */
  | { type: 'page'; id: number; body: ArrayBuffer }
  /** A stream page; its typed arrays' buffers are transferred. */
  | { type: 'stream'; id: number; page: StreamPage }
  | { type: 'start'; id: number; after: number }
  /** The read failed; `code` is SQLite's (SQLITE_IOERR, …), for the log. */
  | { type: 'failed'; id: number; message: string; code: string };
