import { parentPort, workerData } from 'node:worker_threads';
import type { ReadAnswer, ReaderMessage, ReaderWorkerData, ReadRequest } from '../src/store/sqlite/reader-protocol.js';
import { SqlitePageReader } from '../src/store/sqlite/sqlite-reader.js';

/*
 * The SQLite reader: builds /events, /topics and stream pages and answers consumer, purge-horizon and
 * /stats reads off the HTTP thread, so a big read never stalls publishers. One request at a time (the
 * HTTP side queues them, bounded); each page leaves as bytes in transferred buffers.
 */

const config = workerData as ReaderWorkerData;
const port = parentPort!;
const reader = new SqlitePageReader(config.dbPath, config.maxPageBytes);
const post = (message: ReaderMessage, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);

// A page's bytes are a buffer of their own (never a pooled slab), so it can be transferred.
const own = (page: Uint8Array): ArrayBuffer => page.buffer as ArrayBuffer;

function answer(request: ReadRequest): ReadAnswer {
  const { id } = request;
  switch (request.kind) {
    case 'events':
      return { type: 'page', id, body: own(reader.page(request.query)) };
    case 'topics':
      return { type: 'page', id, body: own(reader.topics(request.query)) };
    case 'consumer':
      return { type: 'consumer', id, consumer: reader.consumers.consumer(request.name) };
    case 'consumer-status':
      return { type: 'consumer-status', id, consumers: reader.consumers.status(request.name) };
    case 'consumer-page': {
      const page = reader.consumers.page(request.name, request.limit);
      return { type: 'consumer-page', id, page: page && { ...page, events: own(page.events) } };
    }
    case 'stream':
      return { type: 'stream', id, page: reader.streamPage(request.query) };
    case 'start':
      return { type: 'start', id, after: reader.startAfter(request.since) };
    case 'purge-horizon':
      return { type: 'purge-horizon', id, horizon: reader.purgeHorizon(request.topics, request.readable) };
    case 'purge-horizons-above':
      return { type: 'purge-horizons-above', id, horizons: reader.purgeHorizonsAbove(request.topics, request.after, request.readable) };
    case 'topic-details':
      return { type: 'topic-details', id, topics: reader.topicDetails(request.topics) };
    case 'disk-bytes':
      return { type: 'disk-bytes', id, bytes: reader.diskBytes() };
  }
}

function transferred(message: ReadAnswer): ArrayBuffer[] {
  switch (message.type) {
    case 'page':
      return [message.body];
    case 'consumer-page':
      return message.page ? [message.page.events] : [];
    case 'stream':
      return [message.page.frames.buffer, message.page.seqs.buffer, message.page.ends.buffer] as ArrayBuffer[];
    default:
      return [];
  }
}

port.on('message', (request: ReadRequest) => {
  try {
    const message = answer(request);
    post(message, transferred(message));
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    post({ type: 'failed', id: request.id, message: (error as Error).message, code: typeof code === 'string' ? code : 'READ_FAILED' });
  }
});
post({ type: 'ready' });
