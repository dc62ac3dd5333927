import type { EventPageQuery, TopicPageQuery } from './store.js';

/*
 * The only shapes that cross the thread boundary between the HTTP thread and the SQLite reader worker
 * (workers/reader.ts). Pages come back as bytes in a transferred ArrayBuffer: moved, not copied.
 */

export interface ReaderWorkerData {
  dbPath: string;
  maxPageBytes: number;
}

export type ReadRequest =
  | { id: number; kind: 'events'; query: EventPageQuery }
  | { id: number; kind: 'topics'; query: TopicPageQuery };

export type ReaderMessage =
  | { type: 'ready' }
  /** The page as the UTF-8 bytes of a JSON array. */
  | { type: 'page'; id: number; body: ArrayBuffer }
  /** The read failed; `code` is SQLite's (SQLITE_IOERR, …), for the log. */
  | { type: 'failed'; id: number; message: string; code: string };
