import { once } from 'node:events';
import { request } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { createLogger } from '../src/logger.js';
import { ReadGate } from '../src/store/read-gate.js';
import { SqliteEventStore } from '../src/store/sqlite/sqlite-store.js';
import { SqliteWorkerReader } from '../src/store/sqlite/sqlite-worker-reader.js';
import { ReadersBusyError, StoreError } from '../src/store/store.js';
import { makeEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { startAggregator } from './helpers/in-process.js';
import { spawnServer } from './helpers/server-process.js';
import { sqliteStore } from './helpers/stores.js';
import { bigEvent, publishAll, readersSuite } from './suites/readers.js';

readersSuite(sqliteStore);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const p99 = (samples: number[]) => [...samples].sort((a, b) => a - b)[Math.floor(samples.length * 0.99)]!;

t.test('3 readers pulling maximal pages of 60 KiB events do not stall publishers', async (t) => {
  const server = await spawnServer(join(t.testdir(), 'aggregator.db'));
  t.teardown(() => server.stop());
  const stored = 1_000;
  for (let i = 0; i < stored; i += 50) {
    t.equal((await server.publish(Array.from({ length: 50 }, () => bigEvent(60)))).status, 200);
  }
  const publishLatencies = async (count: number) => {
    const latencies = [];
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      const { status } = await server.publish(makeEvent());
      latencies.push(status === 200 ? performance.now() - started : Infinity);
    }
    return latencies;
  };

  const idle = p99(await publishLatencies(200));
  let reading = true;
  const statuses: Record<number, number> = {};
  // Readers that discard what they read, so the test process itself stays idle.
  const readOnce = () => new Promise<void>((resolve, reject) => {
    const after = Math.floor(Math.random() * stored);
    request(`${server.url}/events?after=${after}&limit=10000`, (res) => {
      statuses[res.statusCode!] = (statuses[res.statusCode!] ?? 0) + 1;
      res.resume().on('end', resolve).on('error', reject);
    }).on('error', reject).end();
  });
  const readers = Array.from({ length: 3 }, async () => {
    while (reading) await readOnce();
  });
  const busy = p99(await publishLatencies(300));
  reading = false;
  await Promise.all(readers);
  t.comment(`publish p99: idle ${idle.toFixed(1)} ms, with 3 readers ${busy.toFixed(1)} ms; reads by status ${JSON.stringify(statuses)}`);
  t.ok((statuses[200] ?? 0) >= 10, 'the readers read while the publisher published');
  t.ok(busy < 500, `publish p99 with readers (${busy.toFixed(1)} ms) stays under 500 ms`);
});

t.test('a reader that stops reading is disconnected within REQUEST_TIMEOUT_MS of no progress', async (t) => {
  const timeoutMs = 500;
  // A page far larger than the socket buffers, so the unread rest stays on the server.
  const agg = await startAggregator(t, { requestTimeoutMs: timeoutMs, maxPageBytes: 64 * 1024 * 1024 });
  await publishAll(t, agg, Array.from({ length: 500 }, () => bigEvent(60)));
  await agg.app.listen({ port: 0, host: '127.0.0.1' });
  const connections = () => new Promise<number>((resolve) => agg.app.server.getConnections((_, n) => resolve(n)));

  const socket = connect((agg.app.server.address() as AddressInfo).port, '127.0.0.1');
  await once(socket, 'connect');
  socket.pause();
  socket.write('GET /events?limit=10000 HTTP/1.1\r\nHost: test\r\n\r\n');
  const started = Date.now();
  while (Date.now() - started < 1_000 && (await connections()) === 1) await sleep(20);
  t.equal(await connections(), 1, 'still connected while within the bound');
  await eventually(connections, { what: 'the server to drop the stalled reader', timeout: timeoutMs + 10_000, until: (n) => n === 0 });
  const elapsed = Date.now() - started;
  t.ok(elapsed >= timeoutMs, `the server dropped the stalled reader after ${elapsed} ms, not before the bound`);

  let received = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
  socket.on('error', () => undefined);
  socket.resume();
  await once(socket, 'close');
  const head = received.subarray(0, received.indexOf('\r\n\r\n')).toString();
  const length = Number(/content-length: (\d+)/i.exec(head)?.[1]);
  t.ok(length > 20 * 1024 * 1024, `the page was ${length} bytes`);
  t.ok(received.length < length, `the client got ${received.length} bytes of it before the server let go`);
});

t.test('a reader worker that dies fails its read with a StoreError and is restarted', async (t) => {
  const dbPath = join(t.testdir(), 'aggregator.db');
  const store = new SqliteEventStore(dbPath, { synchronous: 'normal', maxBytes: 0 });
  store.commitBatch([{ ...makeEvent(), eventId: 'e1', payload: '{}', receivedAt: '2026-11-24T10:00:00.000Z' }], { epoch: 'e', position: 1 });
  // Enough behind it that a page of them takes the worker tens of milliseconds: the read is still in flight
  // when the thread is killed, rather than answered in the microseconds a one-row page takes.
  const payload = JSON.stringify({ pad: 'x'.repeat(1_000) });
  for (let b = 0; b < 10; b++) {
    store.commitBatch(Array.from({ length: 1_000 }, (_, i) => ({ ...makeEvent(), eventId: `bulk-${b}-${i}`, payload, receivedAt: '2026-11-24T10:00:00.000Z' })),
      { epoch: 'e', position: 2 + b });
  }
  store.close();
  const reader = await SqliteWorkerReader.open({ dbPath, maxPageBytes: 64 * 1024 * 1024 }, createLogger('silent', 'test'));
  t.teardown(() => reader.close());

  const inFlight = reader.page({ after: 0, limit: 10_000 });
  // Kill the thread the way a native crash would, while the read is in flight.
  await (reader as unknown as { worker: { thread: { terminate(): Promise<number> } } }).worker.thread.terminate();
  await t.rejects(inFlight, StoreError, 'the read in flight fails (503), it is not left hanging');
  await t.rejects(reader.page({ after: 0, limit: 10 }), StoreError, 'reads while it restarts fail fast');
  const bytes = await eventually(() => reader.page({ after: 0, limit: 10 }), { what: 'the restarted reader worker to read', timeout: 10_000, interval: 50 });
  const page = JSON.parse(Buffer.from(bytes).toString());
  t.same(page.map((e: { event_id: string }) => e.event_id), ['e1', ...Array.from({ length: 9 }, (_, i) => `bulk-0-${i}`)], 'the restarted worker reads again');
});

t.test('the read gate bounds reads in flight and waiting: beyond it, ReadersBusyError at once or after the wait', async (t) => {
  const gate = new ReadGate({ slots: 1, maxQueued: 2, maxWaitMs: 200 });
  let release!: () => void;
  const running = gate.run(() => new Promise<string>((resolve) => (release = () => resolve('first'))));
  const queued = [gate.run(async () => 'second'), gate.run(async () => 'third')];
  await t.rejects(gate.run(async () => 'fourth'), ReadersBusyError, 'a read beyond the queue is refused at once');
  release();
  t.same(await Promise.all([running, ...queued]), ['first', 'second', 'third'], 'queued reads run in turn');

  const stuck = gate.run(() => sleep(1_000));
  const started = Date.now();
  await t.rejects(gate.run(async () => 'late'), ReadersBusyError, 'a read that waits too long is refused');
  t.ok(Date.now() - started < 900, 'after the wait, not after the slow read');
  await stuck;
  t.equal(await gate.run(async () => 'free'), 'free', 'the slot is free again');
});
