/*
 * node dist/perf/readers.js [--events 3000] [--samples 1000]: publish latency with and without readers, on
 * SQLite. Stores `--events` events of 60 KiB, then measures single-event publishes one at a time, first
 * idle, then while 3 readers pull maximal /events pages in a loop (perf/page-readers.ts).
 * Target: p99 with readers <= 2 x idle p99 + 10 ms.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startPageReaders } from './page-readers.js';
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

await measure();

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
    const readers = startPageReaders(server.url, 3, stored);
    const started = performance.now();
    const busy = await publishP99(server.url);
    const seconds = (performance.now() - started) / 1000;
    const { pages, bytes } = await readers.stop();
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
