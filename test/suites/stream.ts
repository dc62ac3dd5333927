import t, { type Test } from 'tap';
import { keyOf, makeEvent, type TestEvent } from '../helpers/events.js';
import { startPublishers } from '../helpers/publishers.js';
import { eventually } from '../helpers/eventually.js';
import { readAllEvents, spawnServer, type ServerProcess } from '../helpers/server-process.js';
import { openStream, orderProblems, type SseStream } from '../helpers/sse.js';
import type { TestStore } from '../helpers/stores.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A spawned server on a fresh store of this kind; `restart` spawns another on the same store. */
async function serverOn(t: Test, store: TestStore, env: Record<string, string> = {}) {
  const settings = await store.fresh(t);
  const start = async () => {
    const server = await spawnServer(settings.dbPath, { ...store.env(settings), ...env });
    t.teardown(() => server.kill());
    return server;
  };
  return { start };
}

async function publishAll(server: ServerProcess, events: TestEvent[], perRequest = 100): Promise<void> {
  for (let i = 0; i < events.length; i += perRequest) {
    const res = await server.publish(events.slice(i, i + perRequest));
    if (res.status !== 200) throw new Error(`publish answered ${res.status}: ${JSON.stringify(res.body)}`);
  }
}

const events = (count: number, topic = 'orders.eu') => Array.from({ length: count }, () => makeEvent({ topic }));
const seqsOf = (items: any[]) => items.map((e) => e.seq as number);

/** /events/stream on SQLite and PostgreSQL alike: every test here runs on both stores, on spawned servers. */
export function streamSuite(store: TestStore): void {
  t.test('after=0 catches up over many pages, then turns live without a seam', async (t) => {
    const server = await (await serverOn(t, store)).start();
    await publishAll(server, events(2_500));
    const stream = await openStream(server.url, '/events/stream?after=0');
    t.equal(stream.status, 200);
    t.match(stream.headers['content-type'], /^text\/event-stream/);
    t.equal(stream.headers['cache-control'], 'no-cache');
    t.equal(stream.headers['x-accel-buffering'], 'no');
    const live = publishAll(server, events(500), 10);
    await live;
    await stream.waitFor(3_000);
    await sleep(200);
    stream.close();
    const stored = await readAllEvents((path) => server.get(path));
    t.equal(stream.retry, 1000, 'starts with retry:');
    t.same(stream.ids, seqsOf(stored), 'every stored event once, in seq order');
    t.same(stream.events.map((e) => JSON.parse(e.data)), stored, 'data: is the /events item');
    t.ok(stream.events.every((e) => e.event === 'event' && e.id === String(JSON.parse(e.data).seq)), 'id: is the seq');
  });

  t.test('no after: only events committed from now on; Last-Event-ID wins over after; since=', async (t) => {
    const server = await (await serverOn(t, store)).start();
    await publishAll(server, events(10));
    const fromNow = await openStream(server.url, '/events/stream');
    const resumed = await openStream(server.url, '/events/stream?after=0', { 'last-event-id': '' });
    t.equal(resumed.status, 400, 'an empty Last-Event-ID is refused');
    const before = await readAllEvents((path) => server.get(path));
    const lastId = await openStream(server.url, '/events/stream?after=0', { 'last-event-id': String(before[6].seq) });
    await sleep(50);
    const since = new Date().toISOString();
    await sleep(50);
    await publishAll(server, events(5));
    const sinceStream = await openStream(server.url, `/events/stream?since=${encodeURIComponent(since.replace('Z', '+00:00'))}`);
    const all = await readAllEvents((path) => server.get(path));
    await fromNow.waitFor(5);
    await lastId.waitFor(8);
    await sinceStream.waitFor(5);
    await sleep(200);
    for (const s of [fromNow, lastId, sinceStream]) s.close();
    t.same(fromNow.ids, seqsOf(all.slice(10)), 'no after: the 5 published after it opened');
    t.same(lastId.ids, seqsOf(all.slice(7)), 'Last-Event-ID: after that seq, whatever after= says');
    t.same(sinceStream.ids, seqsOf(all.slice(10)), 'since=: from the first event received at or after it');
  });

  t.test('consumer=: after the consumer\'s committed position, over its topics; topic narrows; Last-Event-ID wins', async (t) => {
    const server = await (await serverOn(t, store)).start();
    const mixed = Array.from({ length: 60 }, (_, i) => makeEvent({ topic: ['a', 'b', 'c'][i % 3]! }));
    await publishAll(server, mixed, 7);
    t.equal((await server.request('PUT', '/consumers/billing', { topics: ['a', 'b'], start: 'earliest' })).status, 201);
    const stored = await readAllEvents((path) => server.get(path));
    const mine = stored.filter((e) => e.topic !== 'c');
    t.equal((await server.request('POST', '/consumers/billing/commit', { seq: mine[9].seq })).status, 200);
    const after = (events: any[], seq: number) => seqsOf(events.filter((e) => e.seq > seq));

    const fromConsumer = await openStream(server.url, '/events/stream?consumer=billing');
    const narrowed = await openStream(server.url, '/events/stream?consumer=billing&topic=b&topic=c');
    const resumed = await openStream(server.url, '/events/stream?consumer=billing', { 'last-event-id': String(mine[30].seq) });
    await fromConsumer.waitFor(30);
    await narrowed.waitFor(15);
    await resumed.waitFor(9);
    await sleep(200);
    for (const s of [fromConsumer, narrowed, resumed]) s.close();
    t.same(fromConsumer.ids, after(mine, mine[9].seq), 'after the committed position, only the consumer\'s topics');
    t.same(narrowed.ids, after(mine.filter((e) => e.topic === 'b'), mine[9].seq), 'a topic given too narrows them');
    t.same(resumed.ids, after(mine, mine[30].seq), 'Last-Event-ID wins over the position');

    const refusals: [string, number, string][] = [
      ['consumer=nobody', 404, 'UNKNOWN_CONSUMER'], ['consumer=bad%20name', 400, 'INVALID_CONSUMER'],
      ['consumer=billing&topic=c', 400, 'INVALID_QUERY'],
    ];
    for (const [query, status, code] of refusals) {
      const res = await openStream(server.url, `/events/stream?${query}`);
      t.equal(res.status, status, query);
      t.equal(res.error?.code, code, `${query}: ${res.error?.message}`);
    }
  });

  t.test('two topics in one stream: exactly their events, in seq order', async (t) => {
    const server = await (await serverOn(t, store)).start();
    const fromEmpty = await openStream(server.url, '/events/stream?after=0');
    const mixed = Array.from({ length: 300 }, (_, i) => makeEvent({ topic: ['a', 'b', 'c'][i % 3]! }));
    await publishAll(server, mixed.slice(0, 150), 7);
    const stream = await openStream(server.url, '/events/stream?after=0&topic=a&topic=c');
    await publishAll(server, mixed.slice(150), 7);
    await stream.waitFor(200);
    await fromEmpty.waitFor(300);
    await sleep(200);
    stream.close();
    fromEmpty.close();
    const all = await readAllEvents((path) => server.get(path));
    t.same(stream.ids, seqsOf(all.filter((e) => e.topic !== 'b')));
    t.same(fromEmpty.ids, seqsOf(all), 'after=0 opened on an empty store: every event');
  });

  t.test('resume with Last-Event-ID after a disconnect, a SIGTERM and a kill -9: every acked event once, in order', async (t) => {
    const { start } = await serverOn(t, store);
    let server = await start();
    const publishing = startPublishers(() => [server], { count: 3, retry: true });
    const received: number[] = [];
    let stream = await openStream(server.url, '/events/stream?after=0');
    const reconnect = async () => {
      received.push(...stream.ids);
      const last = received.at(-1);
      stream = await openStream(server.url, '/events/stream?after=0', last === undefined ? {} : { 'last-event-id': String(last) });
      t.equal(stream.status, 200);
    };
    const receiveSome = async () => {
      await stream.waitFor(20, 20_000);
      await sleep(300);
    };

    await receiveSome();
    stream.close();
    await stream.ended;
    await reconnect();
    await receiveSome();

    const stopped = Date.now();
    t.equal(await server.stop(), 0, 'SIGTERM: the server exits cleanly with streams open');
    t.ok(Date.now() - stopped < 10_000, `and promptly (${Date.now() - stopped} ms)`);
    await stream.ended;
    server = await start();
    await reconnect();
    await receiveSome();

    await server.kill();
    await stream.ended;
    server = await start();
    await reconnect();
    await receiveSome();

    await publishing.stop();
    const stored = await readAllEvents((path) => server.get(path));
    await eventually(() => received.length + stream.ids.length, {
      what: 'the stream to reach the last stored event', timeout: 20_000, until: (n) => n >= stored.length,
    });
    await sleep(200);
    stream.close();
    received.push(...stream.ids);
    t.same(orderProblems(received), [], 'strictly increasing across the reconnects');
    t.same(received, seqsOf(stored), 'every stored event exactly once');
    const storedKeys = new Set(stored.map(keyOf));
    t.equal(publishing.acked.filter((e) => !storedKeys.has(keyOf(e))).length, 0, 'every acked event is stored');
    t.ok(publishing.acked.length > 100, `publishers published throughout (${publishing.acked.length} acked)`);
  });

  t.test('stalled subscribers cost bounded memory and do not stall publishers; a slow one catches up', async (t) => {
    const server = await (await serverOn(t, store, { REQUEST_TIMEOUT_MS: '120000' })).start();
    const rss = async () => Number(/aggregator_process_resident_memory_bytes\{[^}]*\} (\d+)/.exec(await server.get('/metrics'))![1]);
    const payload = 'x'.repeat(2_000);
    const batch = () => Array.from({ length: 100 }, () => makeEvent({ payload: { payload } }));
    const timePublishes = async (count: number) => {
      const started = performance.now();
      for (let i = 0; i < count; i++) await publishAll(server, batch());
      return performance.now() - started;
    };
    await timePublishes(20);
    const alone = await timePublishes(50);
    const stalled: SseStream[] = [];
    for (let i = 0; i < 50; i++) stalled.push(await openStream(server.url, '/events/stream'));
    for (const s of stalled) s.pause();
    const before = await rss();
    // 50 x 20,000 events of ~2 KiB: ~2 GB if each stalled stream were buffered whole.
    const withStalled = await timePublishes(200);
    const grown = (await rss()) - before;
    t.ok(grown < 150 * 2 ** 20, `RSS grew ${(grown / 2 ** 20).toFixed(1)} MiB with 50 stalled subscribers over ~40 MB published`);
    const perBatch = { alone: alone / 50, withStalled: withStalled / 200 };
    t.ok(perBatch.withStalled < perBatch.alone * 3 + 5, `publish time per batch: ${perBatch.alone.toFixed(1)} ms alone, ${perBatch.withStalled.toFixed(1)} ms with them`);
    t.equal((await server.get('/stats')).subscribers, 50, '/stats counts the subscribers');
    t.match(await server.get('/metrics'), /aggregator_stream_subscribers\{[^}]*\} 50/);

    const slow = stalled[0]!;
    slow.resume();
    const stored = await readAllEvents((path) => server.get(path));
    await slow.waitFor(stored.length - 7_000, 60_000);
    await eventually(() => slow.ids.at(-1), { what: 'the slow subscriber to catch up', timeout: 60_000, until: (id) => id === stored.at(-1).seq });
    t.same(slow.ids, seqsOf(stored.slice(7_000)), 'the slow subscriber got every event once, in order');
    for (const s of stalled) s.close();
  });

  t.test('a subscriber that takes nothing for REQUEST_TIMEOUT_MS is disconnected', async (t) => {
    const server = await (await serverOn(t, store, { REQUEST_TIMEOUT_MS: '1500' })).start();
    const stream = await openStream(server.url, '/events/stream');
    stream.pause();
    t.equal((await server.get('/stats')).subscribers, 1);
    const payload = 'y'.repeat(4_000);
    for (let i = 0; i < 60; i++) await publishAll(server, Array.from({ length: 100 }, () => makeEvent({ payload: { payload } })));
    await eventually(() => server.get('/stats'), { what: 'the server to drop it', timeout: 15_000, until: (s) => s.subscribers === 0 });
    stream.close();
  });

  t.test('bad input is 400 with a code; the subscriber limit is 503 + Retry-After; auth as /events', async (t) => {
    const server = await (await serverOn(t, store, { MAX_SUBSCRIBERS: '2', AUTH_READS: 'true', AUTH_READ_TOKEN: 'r' })).start();
    const auth = { authorization: 'Bearer r' };
    t.equal((await openStream(server.url, '/events/stream')).status, 401, 'no token: 401');
    for (const query of ['after=x', 'after=-1', 'after=9007199254740992', 'since=yesterday', 'since=2026-11-24T10:00:00',
      'topic=%01', 'topic=']) {
      const res = await openStream(server.url, `/events/stream?${query}`, auth);
      t.equal(res.status, 400, query);
      t.equal(res.error?.code, 'INVALID_QUERY', `${query}: ${res.error?.message}`);
    }
    const bad = await openStream(server.url, '/events/stream', { ...auth, 'last-event-id': '12x' });
    t.equal(bad.error?.code, 'INVALID_QUERY', 'a Last-Event-ID that is not a seq');
    const open = [await openStream(server.url, '/events/stream', auth), await openStream(server.url, '/events/stream', auth)];
    t.same(open.map((s) => s.status), [200, 200]);
    const refused = await openStream(server.url, '/events/stream', auth);
    t.equal(refused.status, 503);
    t.equal(refused.error.code, 'SUBSCRIBER_LIMIT');
    t.ok(Number(refused.headers['retry-after']) > 0, 'Retry-After');
    open[0]!.close();
    const next = await eventually(() => openStream(server.url, '/events/stream', auth), {
      what: 'a free subscriber slot', timeout: 5_000, until: (s) => s.status === 200,
    });
    next.close();
    open[1]!.close();
  });
}
