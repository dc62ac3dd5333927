import { parentPort, workerData } from 'node:worker_threads';
import type { AnswerTo, ReadAnswer, ReadAnswers, ReaderMessage, ReaderWorkerData, ReadRequest } from '../src/store/sqlite/reader-protocol.js';
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

type Read = ReadRequest['kind'];
/** Each kind of read's handler, typed to answer what the protocol says that kind answers. */
const handlers: { [K in Read]: (request: Extract<ReadRequest, { kind: K }>) => ReadAnswers[K] } = {
  events: ({ query }) => ({ type: 'page', body: own(reader.page(query)) }),
  topics: ({ query }) => ({ type: 'page', body: own(reader.topics(query)) }),
  consumer: ({ name }) => ({ type: 'consumer', consumer: reader.consumers.consumer(name) }),
  'consumer-status': ({ name }) => ({ type: 'consumer-status', consumers: reader.consumers.status(name) }),
  'consumer-page': ({ name, limit, bounds }) => {
    const page = reader.consumers.page(name, limit, bounds);
    return { type: 'consumer-page', page: page && { ...page, events: own(page.events) } };
  },
  stream: ({ query }) => ({ type: 'stream', page: reader.streamPage(query) }),
  start: ({ since }) => ({ type: 'start', after: reader.startAfter(since) }),
  'first-after': ({ until }) => ({ type: 'first-after', seq: reader.firstReceivedAfter(until) }),
  'purge-horizon': ({ topics, readable }) => ({ type: 'purge-horizon', horizon: reader.purgeHorizon(topics, readable) }),
  'purge-horizons-above': ({ topics, after, readable }) =>
    ({ type: 'purge-horizons-above', horizons: reader.purgeHorizonsAbove(topics, after, readable) }),
  'topic-details': ({ topics }) => ({ type: 'topic-details', topics: reader.topicDetails(topics) }),
  'disk-bytes': () => ({ type: 'disk-bytes', bytes: reader.diskBytes() }),
};

function answer<K extends Read>(request: Extract<ReadRequest, { kind: K }>): AnswerTo<K> {
  const handler = handlers[request.kind] as (request: Extract<ReadRequest, { kind: K }>) => ReadAnswers[K];
  return { ...handler(request), id: request.id };
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
