import { parentPort, workerData } from 'node:worker_threads';
import type { ReaderMessage, ReaderWorkerData, ReadRequest } from '../src/store/reader-protocol.js';
import { SqlitePageReader } from '../src/store/sqlite-reader.js';

/*
 * The SQLite reader: builds /events and /topics pages off the HTTP thread, so a big read never stalls
 * publishers. One request at a time (the HTTP side queues them, bounded); each page leaves as bytes in a
 * transferred buffer.
 */

const config = workerData as ReaderWorkerData;
const port = parentPort!;
const reader = new SqlitePageReader(config.dbPath, config.maxPageBytes);
const post = (message: ReaderMessage, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);

port.on('message', (request: ReadRequest) => {
  try {
    const page = request.kind === 'events' ? reader.page(request.query) : reader.topics(request.query);
    // The page's bytes are a buffer of their own (never a pooled slab), so it can be transferred.
    const buffer = page.buffer as ArrayBuffer;
    post({ type: 'page', id: request.id, body: buffer }, [buffer]);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    post({ type: 'failed', id: request.id, message: (error as Error).message, code: typeof code === 'string' ? code : 'READ_FAILED' });
  }
});
post({ type: 'ready' });
