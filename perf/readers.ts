/*
 * node dist/perf/readers.js [--events 3000] [--samples 1000]: publish latency with and without readers, on
 * SQLite. Stores `--events` events of 60 KiB, then measures single-event publishes one at a time, first
 * idle, then while 3 readers pull maximal /events pages (limit=10000, so MAX_PAGE_BYTES decides) in a loop.
 * The readers run on a thread of their own, as they would be other clients: taking 200 MB/s in on the
 * publisher's own event loop would measure the load generator, not the server.
 * Target: p99 with readers <= 2 x idle p99 + 10 ms.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { startServer } from './server.js';

const { values } = parseArgs({ options: { events: { type: 'string', default: '3000' }, samples: { type: 'string', default: '1000' } } });
const stored = Number(values.events);
const samples = Number(values.samples);
const event = (payload: object) => ({
  topic: 'perf.readers', event_id: randomUUID(), timestamp: new Date().toISOString(), source: 'perf', payload,
});

async function publish(url: string, body: unknown): Promise<void> {
  const res = await fetch(`${url}/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (res.status !== 200) throw new Error(`publish answered ${res.status}: ${await res.text()}`);
}

async function publishP99(url: string): Promise<number> {
  const latencies: number[] = [];
  for (let i = 0; i < samples; i++) {
    const started = performance.now();
    await publish(url, event({ i }));
    latencies.push(performance.now() - started);
  }
  return latencies.sort((a, b) => a - b)[Math.floor(samples * 0.99)]!;
}

/** A reader that discards the bytes it reads, so the load generator stays light. */
const readPage = (url: string) => new Promise<number>((resolve, reject) => {
  request(`${url}/events?after=${Math.floor(Math.random() * stored)}&limit=10000`, (res) => {
    let bytes = 0;
    res.on('data', (chunk: Buffer) => (bytes += chunk.length)).on('end', () => resolve(bytes)).on('error', reject);
  }).on('error', reject).end();
});

/** The reader thread: 3 readers in a loop until told to stop, then it reports pages and bytes read. */
async function readUntilStopped(url: string): Promise<void> {
  let reading = true;
  parentPort!.once('message', () => (reading = false));
  let pages = 0;
  let bytes = 0;
  await Promise.all(Array.from({ length: 3 }, async () => {
    while (reading) {
      bytes += await readPage(url);
      pages++;
    }
  }));
  parentPort!.postMessage({ pages, bytes });
}

if (isMainThread) await measure();
else await readUntilStopped((workerData as { url: string }).url);

async function measure(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'aggregator-readers-'));
  const server = await startServer({ STORE: 'sqlite', DB_PATH: join(dir, 'aggregator.db') });
  try {
    process.stdout.write(`storing ${stored} events of 60 KiB … `);
    for (let i = 0; i < stored; i += 50) {
      await publish(server.url, Array.from({ length: Math.min(50, stored - i) }, () => event({ blob: randomBytes(30 * 1024).toString('hex') })));
    }
    console.log('done');
    const idle = await publishP99(server.url);
    const readers = new Worker(new URL(import.meta.url), { workerData: { url: server.url }, argv: process.argv.slice(2) });
    const started = performance.now();
    const busy = await publishP99(server.url);
    const seconds = (performance.now() - started) / 1000;
    readers.postMessage('stop');
    const { pages, bytes } = await new Promise<{ pages: number; bytes: number }>((resolve) => readers.once('message', resolve));
    const target = 2 * idle + 10;
    console.table([{
      'idle p99 ms': +idle.toFixed(1), 'with 3 readers p99 ms': +busy.toFixed(1), ratio: +(busy / idle).toFixed(2),
      'target ms': +target.toFixed(1), met: busy <= target, 'pages read': pages, 'MB/s read': +(bytes / 2 ** 20 / seconds).toFixed(0),
    }]);
    if (busy > target) process.exitCode = 1;
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
