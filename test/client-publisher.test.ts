import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { Publisher, PublishError } from 'pubsub-aggregator/client';
import { freePort } from '../scripts/free-port.js';
import { keyOf, makeEvent, type TestEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { startAggregator } from './helpers/in-process.js';
import { readAllEvents, spawnServer } from './helpers/server-process.js';

/** Every stored key and how often: the store must hold each published key exactly once. */
async function storedKeys(get: (path: string) => Promise<any>): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const event of await readAllEvents(get)) counts.set(keyOf(event), (counts.get(keyOf(event)) ?? 0) + 1);
  return counts;
}

function assertStoredOnce(t: Test, stored: Map<string, number>, published: TestEvent[]): void {
  const missing = published.filter((e) => stored.get(keyOf(e)) !== 1);
  t.same(missing.length, 0, `every published event stored exactly once (${missing.length} missing or repeated)`);
  t.equal(stored.size, published.length, 'and nothing else');
}

t.test('the package exports the client and the pino transport by name, each with its types', async (t) => {
  const require = createRequire(import.meta.url);
  const manifest = JSON.parse(readFileSync(require.resolve('pubsub-aggregator/package.json'), 'utf8'));
  for (const entry of ['./client', './pino']) {
    const { types, default: code } = manifest.exports[entry];
    t.ok(existsSync(new URL(`../../${types}`, import.meta.url)), `${entry}: ${types} is built`);
    t.ok(existsSync(new URL(`../../${code}`, import.meta.url)), `${entry}: ${code} is built`);
  }
  const client = await import('pubsub-aggregator/client');
  t.same(Object.keys(client).sort(), ['AggregatorError', 'DurableConsumer', 'PublishError', 'Publisher', 'consume', 'subscribe']);
  t.type((await import('pubsub-aggregator/pino')).default, 'function');
  t.equal(require.resolve('pubsub-aggregator/pino'), fileURLToPath(new URL('../src/clients/pino-transport.js', import.meta.url)),
    'resolvable by require too, as pino resolves a transport target');
});

t.test('100,000 events through a spawned server: flush() resolves once every one is committed', async (t) => {
  const server = await spawnServer(join(t.testdir(), 'aggregator.db'));
  t.teardown(() => server.kill());
  const publisher = new Publisher({ url: server.url, batchSize: 1_000 });
  const events = Array.from({ length: 100_000 }, (_, n) => makeEvent({ topic: `orders.${n % 4}` }));
  for (const event of events) await publisher.publish(event);
  await publisher.flush();
  t.match(publisher.stats, { published: 100_000, acked: 100_000, unique: 100_000, duplicates: 0, failed: 0 });
  t.equal(publisher.buffered, 0);
  // Committed before flush() resolved: readable at once, no waiting.
  t.equal((await server.get('/stats')).unique_processed, 100_000);
  assertStoredOnce(t, await storedKeys((path) => server.get(path)), events);
  await publisher.close();
  await t.rejects(publisher.publish(makeEvent()), /after close/);
});

t.test('a kill -9 and restart in the middle: every event stored exactly once, flush() resolves after', async (t) => {
  const dbPath = join(t.testdir(), 'aggregator.db');
  const env = { PORT: String(await freePort()) };
  let server = await spawnServer(dbPath, env);
  t.teardown(() => server.kill());
  const publisher = new Publisher({ url: server.url, batchSize: 100, concurrency: 4, maxBufferedEvents: 2_000 });
  const events = Array.from({ length: 20_000 }, () => makeEvent());
  const publishing = (async () => {
    for (const event of events) await publisher.publish(event);
    await publisher.flush();
  })();
  await eventually(() => publisher.stats.acked, { what: 'a first share acknowledged', timeout: 20_000, until: (n) => n >= 3_000 });
  await server.kill();
  const ackedAtKill = publisher.stats.acked;
  await eventually(() => publisher.stats.retries, { what: 'retries against the dead server', timeout: 10_000, until: (n) => n > 0 });
  server = await spawnServer(dbPath, env);
  await publishing;
  t.ok(ackedAtKill < events.length, `the kill came mid-way (${ackedAtKill} acknowledged)`);
  t.match(publisher.stats, { acked: 20_000, failed: 0 });
  t.ok(publisher.stats.retries > 0, `it retried (${publisher.stats.retries})`);
  assertStoredOnce(t, await storedKeys((path) => server.get(path)), events);
  const stats = await server.get('/stats');
  t.equal(stats.unique_processed, 20_000, 'counted once each, a retry of stored events as duplicates');
});

t.test('a refusal (4xx) rejects flush() with its code and per-event errors; the valid events of the batch are stored', async (t) => {
  const agg = await startAggregator(t);
  const url = await agg.app.listen({ port: 0, host: '127.0.0.1' });
  const failures: PublishError[] = [];
  const publisher = new Publisher({ url, batchSize: 10, onError: (error) => failures.push(error) });
  const events = Array.from({ length: 10 }, () => makeEvent());
  events[3] = makeEvent({ timestamp: '2023-02-30T10:00:00Z' });
  events[7] = makeEvent({ source: '' });
  for (const event of events) await publisher.publish(event);
  const error = await publisher.flush().then(() => undefined, (e: unknown) => e);
  t.ok(error instanceof PublishError, 'a PublishError');
  t.match(error, { name: 'PublishError', status: 400, code: 'INVALID_EVENT' });
  const refused = error as PublishError;
  t.same(refused.events, [events[3], events[7]], 'carrying exactly the invalid events');
  t.same(refused.errors.map((e) => [e.index, e.field]), [[0, 'timestamp'], [1, 'source']], 'indexes into those events');
  t.equal(failures.length, 1, 'onError saw it once');
  t.match(publisher.stats, { acked: 8, failed: 2 });
  const stored = await storedKeys((path) => agg.get(path));
  t.same([...stored.keys()].sort(), events.filter((_, i) => i !== 3 && i !== 7).map(keyOf).sort(), 'the eight valid events are stored');
  await publisher.flush();
  t.pass('the next flush does not report the same failure again');
});

t.test('a refusal of the whole request (401) is not retried and fails every event of it', async (t) => {
  const agg = await startAggregator(t, { authToken: 'secret' });
  const url = await agg.app.listen({ port: 0, host: '127.0.0.1' });
  const publisher = new Publisher({ url, batchSize: 5 });
  for (let n = 0; n < 5; n++) await publisher.publish(makeEvent());
  await t.rejects(publisher.flush(), { name: 'PublishError', status: 401, code: 'UNAUTHORIZED' });
  t.match(publisher.stats, { requests: 1, retries: 0, failed: 5, acked: 0 });
  const authorized = new Publisher({ url, token: 'secret' });
  await authorized.publish(makeEvent());
  await authorized.close();
  t.match(authorized.stats, { acked: 1, unique: 1 }, 'the bearer token is sent');
});

t.test('backpressure: with the server away, publish() waits once the buffer holds its bound, never beyond', async (t) => {
  const port = await freePort();
  const bound = 1_000;
  const publisher = new Publisher({ url: `http://127.0.0.1:${port}`, batchSize: 100, gzip: true, maxBufferedEvents: bound });
  const events = Array.from({ length: 5_000 }, () => makeEvent());
  let highest = 0;
  let accepted = 0;
  const publishing = (async () => {
    for (const event of events) {
      await publisher.publish(event);
      accepted++;
      highest = Math.max(highest, publisher.buffered);
    }
  })();
  await eventually(() => accepted, { what: 'the buffer to fill', timeout: 10_000, until: (n) => n === bound });
  await eventually(() => publisher.stats.retries, { what: 'retries of the refused connections', timeout: 10_000, until: (n) => n >= 10 });
  t.equal(accepted, bound, 'publish() waits while the buffer is full');
  const agg = await startAggregator(t);
  let gzipped = 0;
  agg.app.addHook('onRequest', async (request) => void (request.headers['content-encoding'] === 'gzip' && gzipped++));
  await agg.app.listen({ port, host: '127.0.0.1' });
  await publishing;
  await publisher.flush();
  t.ok(highest <= bound, `the buffer never held more than ${bound} (at most ${highest})`);
  t.match(publisher.stats, { acked: 5_000, failed: 0 });
  t.ok(gzipped >= 50, `bodies went gzip (${gzipped} requests)`);
  assertStoredOnce(t, await storedKeys((path) => agg.get(path)), events);
});

t.test('a batch the server finds too large is split until it passes', async (t) => {
  const agg = await startAggregator(t, { maxEventsPerRequest: 30 });
  const url = await agg.app.listen({ port: 0, host: '127.0.0.1' });
  const publisher = new Publisher({ url, batchSize: 100 });
  const events = Array.from({ length: 100 }, () => makeEvent());
  for (const event of events) await publisher.publish(event);
  await publisher.close();
  t.match(publisher.stats, { acked: 100, failed: 0, unique: 100 });
  t.ok(publisher.stats.statusCodes[413]! >= 1, 'after a 413');
  assertStoredOnce(t, await storedKeys((path) => agg.get(path)), events);
});

t.test('a batch waits at most lingerMs for more events', async (t) => {
  const agg = await startAggregator(t);
  const url = await agg.app.listen({ port: 0, host: '127.0.0.1' });
  const publisher = new Publisher({ url, batchSize: 1_000, lingerMs: 50 });
  await publisher.publish(makeEvent());
  await eventually(() => publisher.stats.acked, { what: 'the lone event sent without a flush', timeout: 5_000, until: (n) => n === 1 });
  t.equal(publisher.stats.requests, 1);
});

t.test('retries of a batch wait at most maxRetryDelayMs apart, and maxAttempts ends them with RETRIES_EXHAUSTED', async (t) => {
  // The pino transport relies on the cap: pino gives it 10 s at exit, which a 10 s backoff could sleep through.
  const publisher = new Publisher({ url: `http://127.0.0.1:${await freePort()}`, maxRetryDelayMs: 200, maxAttempts: 16 });
  const event = makeEvent();
  await publisher.publish(event);
  const started = Date.now();
  // 15 waits of at most 200 ms; the default cap (10 s) would need about 40 s for them.
  await t.rejects(publisher.flush(), { name: 'PublishError', code: 'RETRIES_EXHAUSTED', status: 0, events: [event] });
  const seconds = (Date.now() - started) / 1000;
  t.ok(seconds < 12, `16 attempts within ${seconds.toFixed(1)} s`);
  t.match(publisher.stats, { requests: 16, retries: 15, failed: 1, acked: 0 });
});
