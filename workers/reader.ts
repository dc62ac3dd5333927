import { parentPort, workerData } from 'node:worker_threads';
import type { ReaderMessage, ReaderWorkerData, ReadRequest } from '../src/store/reader-protocol.js';
import { SqlitePageReader } from '../src/store/sqlite-reader.js';

/*
 * The SQLite reader: builds /events, /topics and stream pages off the HTTP thread, so a big read never
 * stalls publishers. One request at a time (the HTTP side queues them, bounded); each page leaves as bytes
 * in transferred buffers.
 */

const config = workerData as ReaderWorkerData;
const port = parentPort!;
const reader = new SqlitePageReader(config.dbPath, config.maxPageBytes);
const post = (message: ReaderMessage, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);

/** Page bytes are buffers of their own (never a pooled slab), so they can be transferred. */
function answer(request: ReadRequest): void {
  switch (request.kind) {
    case 'events':
    case 'topics': {
      const page = request.kind === 'events' ? reader.page(request.query) : reader.topics(request.query);
      const buffer = page.buffer as ArrayBuffer;
      post({ type: 'page', id: request.id, body: buffer }, [buffer]);
      return;
    }
    case 'stream': {
      const page = reader.streamPage(request.query);
      post({ type: 'stream', id: request.id, page }, [page.frames.buffer, page.seqs.buffer, page.ends.buffer] as ArrayBuffer[]);
      return;
    }
    case 'start':
      post({ type: 'start', id: request.id, after: reader.startAfter(request.since) });
  }
}

port.on('message', (request: ReadRequest) => {
  try {
    answer(request);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    post({ type: 'failed', id: request.id, message: (error as Error).message, code: typeof code === 'string' ? code : 'READ_FAILED' });
  }
});
post({ type: 'ready' });
