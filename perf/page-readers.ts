import { request } from 'node:http';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

/*
 * Readers that pull maximal /events pages (limit=10000, so MAX_PAGE_BYTES decides) from a random point in
 * a loop. They run on a thread of their own, as they would be other clients: taking 200 MB/s in on the
 * publisher's own event loop would measure the load generator, not the server.
 */

interface ReaderData {
  pageReaders: { url: string; readers: number; maxAfter: number };
}

export interface PagesRead {
  pages: number;
  bytes: number;
}

/** Starts `readers` readers of `url` from random seqs below `maxAfter`; stop() ends them and tells what they read. */
export function startPageReaders(url: string, readers: number, maxAfter: number): { stop(): Promise<PagesRead> } {
  const worker = new Worker(new URL(import.meta.url), { workerData: { pageReaders: { url, readers, maxAfter } } satisfies ReaderData });
  return {
    stop() {
      worker.postMessage('stop');
      return new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
    },
  };
}

/** A page read whose bytes are discarded, so the reader thread stays light. */
const readPage = (url: string, after: number) => new Promise<number>((resolve, reject) => {
  request(`${url}/events?after=${after}&limit=10000`, (res) => {
    let bytes = 0;
    res.on('data', (chunk: Buffer) => (bytes += chunk.length)).on('end', () => resolve(bytes)).on('error', reject);
  }).on('error', reject).end();
});

async function readUntilStopped({ url, readers, maxAfter }: ReaderData['pageReaders']): Promise<void> {
  let reading = true;
  parentPort!.once('message', () => (reading = false));
  const read: PagesRead = { pages: 0, bytes: 0 };
  await Promise.all(Array.from({ length: readers }, async () => {
    while (reading) {
      read.bytes += await readPage(url, Math.floor(Math.random() * maxAfter));
      read.pages++;
    }
  }));
  parentPort!.postMessage(read);
}

if (!isMainThread && (workerData as Partial<ReaderData> | undefined)?.pageReaders) await readUntilStopped((workerData as ReaderData).pageReaders);
