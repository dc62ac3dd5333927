import t, { type Test } from 'tap';
import type { Config } from '../../src/config.js';
import { keyOf, makeEvent } from '../helpers/events.js';
import { eventually } from '../helpers/eventually.js';
import { startAggregator, waitUntilReady, type TestAggregator } from '../helpers/in-process.js';
import { readAllEvents, spawnServer } from '../helpers/server-process.js';
import type { TestStore } from '../helpers/stores.js';

type Start = (t: Test, overrides?: Partial<Config>) => Promise<TestAggregator>;

/**
 * The behaviour every store must have, through real parts: a real aggregator (worker thread, store) driven
 * by Fastify inject, and spawned servers for restarts. Run once per store kind by the *.test.ts files.
 */
export function behaviourSuite(store: TestStore): void {
  const start: Start = async (t, overrides = {}) => startAggregator(t, { ...(await store.fresh(t)), ...overrides });

  t.test('a duplicate is processed once', async (t) => {
    const agg = await start(t);
    const event = makeEvent();
    const first = await agg.publish(event);
    t.equal(first.status, 200);
    t.same(first.body, { accepted: 1, unique: 1, duplicates: 0 });
    const second = await agg.publish(event);
    t.same(second.body, { accepted: 1, unique: 0, duplicates: 1 });

    const events = await agg.get('/events');
    t.equal(events.length, 1);
    const stats = await agg.get('/stats');
    t.match(stats, { received: 2, unique_processed: 1, duplicate_dropped: 1, topics: ['orders.eu'] });
  });

  t.test('accepts one event, an array, or {"events": [...]}', async (t) => {
    const agg = await start(t);
    t.same((await agg.publish(makeEvent())).body, { accepted: 1, unique: 1, duplicates: 0 });
    t.same((await agg.publish([makeEvent(), makeEvent()])).body, { accepted: 2, unique: 2, duplicates: 0 });
    t.same((await agg.publish({ events: [makeEvent(), makeEvent(), makeEvent()] })).body, {
      accepted: 3, unique: 3, duplicates: 0,
    });
    t.equal((await agg.get('/events')).length, 6);
  });

  t.test('duplicates inside one batch count as duplicates', async (t) => {
    const agg = await start(t);
    const a = makeEvent();
    const b = makeEvent();
    const res = await agg.publish([a, b, a, { ...a, payload: { other: true } }, b]);
    t.same(res.body, { accepted: 5, unique: 2, duplicates: 3 });
    t.match(await agg.get('/stats'), { received: 5, unique_processed: 2, duplicate_dropped: 3 });
  });

  t.test('the same event_id under two topics is two events', async (t) => {
    const agg = await start(t);
    const res = await agg.publish([makeEvent({ topic: 'a', event_id: 'x' }), makeEvent({ topic: 'b', event_id: 'x' })]);
    t.same(res.body, { accepted: 2, unique: 2, duplicates: 0 });
    t.same((await agg.get('/stats')).topics.sort(), ['a', 'b']);
  });

  t.test('the first stored copy wins', async (t) => {
    const agg = await start(t);
    const first = makeEvent({ payload: { version: 1 }, source: 'first' });
    await agg.publish(first);
    await agg.publish({ ...first, payload: { version: 2 }, source: 'second', timestamp: '2027-01-01T00:00:00Z' });
    const [stored] = await agg.get('/events');
    t.match(stored, { payload: { version: 1 }, source: 'first', timestamp: first.timestamp });
  });

  t.test('a request with one bad event stores nothing and counts nothing', async (t) => {
    const agg = await start(t);
    const res = await agg.publish([makeEvent(), makeEvent(), makeEvent({ timestamp: 'yesterday' })]);
    t.equal(res.status, 400);
    t.match(res.body, { message: /1 of 3 events are invalid; nothing was stored/ });
    t.same(res.body.errors.map((e: { index: number; field: string }) => [e.index, e.field]), [[2, 'timestamp']]);
    t.same(await agg.get('/events'), []);
    t.match(await agg.get('/stats'), {
      received: 0, unique_processed: 0, duplicate_dropped: 0, topics: [], rejected: { invalid_requests: 1 },
    });
  });

  t.test('stored events carry the event fields, seq and received_at', async (t) => {
    const agg = await start(t);
    const event = makeEvent({ payload: { nested: { list: [1, 'two', null], unicode: 'žluť 🚀' } } });
    const before = Date.now();
    await agg.publish(event);
    const [stored] = await agg.get('/events');
    t.same({ ...stored, seq: undefined, received_at: undefined }, { ...event, seq: undefined, received_at: undefined });
    t.ok(Number.isSafeInteger(stored.seq) && stored.seq > 0, 'seq is a positive JSON-exact integer');
    const receivedAt = Date.parse(stored.received_at);
    t.ok(receivedAt >= before - 1 && receivedAt <= Date.now(), 'received_at is the time of the publish');
  });

  t.test('?ack=queued answers 202 before the commit and the events still get stored', async (t) => {
    const agg = await start(t);
    const res = await agg.publish([makeEvent(), makeEvent()], '?ack=queued');
    t.equal(res.status, 202);
    t.same(res.body, { accepted: 2, queued: true });
    await agg.settle();
    t.match(await agg.get('/stats'), { received: 2, unique_processed: 2, queue_depth: 0 });
    t.equal((await agg.publish(makeEvent(), '?ack=bogus')).status, 400, 'unknown ack mode is refused');
  });

  t.test('/events pages with after and limit, filters by topic, in commit order', async (t) => {
    const agg = await start(t);
    for (let i = 0; i < 25; i++) await agg.publish(makeEvent({ topic: i % 2 ? 'odd' : 'even', event_id: `e${i}` }));

    const pages: any[][] = [];
    for (let after = 0; ; ) {
      const page = await agg.get(`/events?after=${after}&limit=10`);
      if (page.length === 0) break;
      pages.push(page);
      after = page.at(-1).seq;
    }
    t.same(pages.map((p) => p.length), [10, 10, 5]);
    const all = pages.flat();
    t.same(all.map((e) => e.event_id), Array.from({ length: 25 }, (_, i) => `e${i}`), 'commit order, nothing skipped');
    t.ok(all.every((e, i) => i === 0 || e.seq > all[i - 1].seq), 'seq strictly increases');

    const odd = await agg.get('/events?topic=odd&limit=100');
    t.equal(odd.length, 12);
    t.ok(odd.every((e: { topic: string }) => e.topic === 'odd'));
    const oddAfter = await agg.get(`/events?topic=odd&after=${odd[9].seq}`);
    t.same(oddAfter.map((e: { event_id: string }) => e.event_id), ['e21', 'e23']);
    t.same(await agg.get('/events?topic=nobody'), [], 'an unknown topic is an empty array');
    t.equal((await agg.get('/events')).length, 25, 'default limit covers them all');

    for (const bad of ['limit=0', 'limit=10001', 'after=-1', 'after=abc', 'topic=']) {
      const res = await agg.app.inject({ method: 'GET', url: `/events?${bad}` });
      t.equal(res.statusCode, 400, `${bad} is refused`);
    }
  });

  t.test('/stats and /events agree', async (t) => {
    const started = Date.now();
    const agg = await start(t);
    const topics = ['alpha', 'beta', 'gamma'];
    const sent = Array.from({ length: 60 }, (_, i) => makeEvent({ topic: topics[i % 3]!, event_id: `id-${i % 40}` }));
    for (let i = 0; i < sent.length; i += 7) await agg.publish(sent.slice(i, i + 7));

    const stats = await agg.get('/stats');
    const stored = await readAllEvents((path) => agg.get(path));
    const keys = new Set(stored.map(keyOf));
    t.equal(keys.size, stored.length, 'stored keys are unique');
    t.equal(stats.unique_processed, stored.length);
    t.equal(stats.unique_processed, new Set(sent.map(keyOf)).size);
    t.equal(stats.received, sent.length);
    t.equal(stats.received, stats.unique_processed + stats.duplicate_dropped);
    t.same([...stats.topics].sort(), [...new Set(stored.map((e) => e.topic))].sort());
    t.match(stats, { queue_depth: 0, pending_acks: 0, consumer: { ready: true } });
    t.ok(stats.uptime_seconds >= 0 && stats.uptime_seconds <= (Date.now() - started) / 1000, `uptime_seconds (${stats.uptime_seconds}) counts from the start`);
    t.equal(stats.uptime, `${stats.uptime_seconds}s`, 'uptime says the same for people');
  });

  t.test('/healthz and /readyz', async (t) => {
    const agg = await start(t);
    t.same(await agg.get('/healthz'), { status: 'ok' });
    t.same(await agg.get('/readyz'), { status: 'ready' });
  });

  t.test('a full queue answers 503 with Retry-After and stores nothing of that request', async (t) => {
    // A 4 KiB ring cannot take a request whose events need more than half of it.
    const agg = await start(t, { ringBytes: 4096 });
    const big = Array.from({ length: 20 }, () => makeEvent({ payload: { blob: 'x'.repeat(200) } }));
    const tooBig = await agg.publish(big);
    t.equal(tooBig.status, 413, 'a request that can never fit the ring is 413, not 503');

    // Hold the store's write lock from another connection: the consumer waits in its commit, as on a slow
    // disk, so the ring fills up deterministically.
    const letGo = await store.blockWrites(agg.config);
    const answers = [];
    for (let i = 0; i < 40; i++) {
      answers.push(await agg.publish([makeEvent({ payload: { blob: 'y'.repeat(300) } })], '?ack=queued'));
    }
    await letGo();
    const refused = answers.filter((a) => a.status === 503);
    t.ok(answers.every((a) => a.status === 202 || a.status === 503), 'only 202 or 503');
    t.ok(refused.length >= 20, `the ring filled up (${refused.length} of 40 refused)`);
    t.ok(refused.every((a) => a.headers['retry-after'] === '1'), 'every 503 says when to retry');
    t.match(refused[0]!.body, { message: /queue is full/ });
    await agg.settle();
    const stats = await agg.get('/stats');
    t.equal(stats.unique_processed, answers.length - refused.length, 'exactly the accepted events were stored');
    t.equal(stats.received, answers.length - refused.length, 'refused events were not counted as received');
    t.equal(stats.rejected.queue_full, refused.length);
  });

  t.test('dedup and counters survive a restart; SIGTERM drains queued events first', async (t) => {
    const settings = await store.fresh(t);
    const events = Array.from({ length: 250 }, (_, i) => makeEvent({ topic: `topic-${i % 5}` }));

    const first = await spawnServer(settings.dbPath, store.env(settings));
    for (let i = 0; i < 200; i += 20) t.equal((await first.publish(events.slice(i, i + 20))).status, 200);
    t.equal((await first.publish(events.slice(200), '?ack=queued')).status, 202);
    t.equal(await first.stop(), 0, 'SIGTERM exits 0');
    t.ok(first.logs.some((l) => l.msg === 'stopped cleanly'), 'logs a clean stop');

    const second = await spawnServer(settings.dbPath, store.env(settings));
    t.teardown(() => second.kill());
    let stats = await second.get('/stats');
    t.match(stats, { received: 250, unique_processed: 250, duplicate_dropped: 0 }, 'queued events were drained at stop');
    t.same([...stats.topics].sort(), ['topic-0', 'topic-1', 'topic-2', 'topic-3', 'topic-4']);

    const again = await second.publish(events);
    t.same(again.body, { accepted: 250, unique: 0, duplicates: 250 }, 'every republished event is a duplicate');
    stats = await second.get('/stats');
    t.match(stats, { received: 500, unique_processed: 250, duplicate_dropped: 250 });
    const stored = await readAllEvents(second.get);
    t.equal(stored.length, 250);
    t.equal(new Set(stored.map(keyOf)).size, 250);
    // The worker's log lines reach this process's pipe after the acks do.
    const duplicateLogs = await eventually(() => second.logs.filter((l) => l.msg === 'duplicate dropped'), {
      what: "the 250 'duplicate dropped' log lines", timeout: 5_000, until: (lines) => lines.length >= 250,
    });
    t.equal(duplicateLogs.length, 250, 'one log line per dropped duplicate');
    t.match(duplicateLogs[0], { topic: events[0]!.topic, event_id: events[0]!.event_id, source: events[0]!.source });
  });

  for (const [fault, committed] of [['before-commit:2', false], ['after-commit:2', true]] as const) {
    t.test(`a consumer crash ${committed ? 'after' : 'before'} its commit: 503, restart, nothing lost or counted twice`, async (t) => {
      const agg = await start(t, { fault });
      const firstBatch = Array.from({ length: 10 }, () => makeEvent());
      const crashBatch = Array.from({ length: 10 }, () => makeEvent());
      t.same((await agg.publish(firstBatch)).body, { accepted: 10, unique: 10, duplicates: 0 });

      const started = Date.now();
      const crashed = await agg.publish(crashBatch);
      t.equal(crashed.status, 503, 'the waiting request is answered 503, not left hanging');
      t.equal(crashed.headers['retry-after'], '1');
      t.match(crashed.body, { message: /consumer worker crashed/ });
      t.ok(Date.now() - started < 5_000, 'and quickly');
      const down = await agg.app.inject({ method: 'GET', url: '/readyz' });
      t.equal(down.statusCode, 503, '/readyz is 503 while the worker is down');
      t.match(down.json(), { status: 'not_ready', reason: /restarting/ });
      t.match(down.json(), { statusCode: 503, error: 'Service Unavailable', code: 'CONSUMER_UNAVAILABLE', message: /restarting/ },
        'in the error shape of every non-2xx answer');
      t.equal(down.headers['retry-after'], '1', 'with Retry-After');

      await waitUntilReady(agg);
      await agg.settle();
      const stats = await agg.get('/stats');
      t.match(stats, { unique_processed: 20, duplicate_dropped: 0, received: 20, consumer: { restarts: 1, ready: true } },
        'the crashed batch is stored exactly once and not counted as duplicates');
      t.equal((await agg.get('/events')).length, 20);

      const retried = await agg.publish(crashBatch);
      t.same(retried.body, { accepted: 10, unique: 0, duplicates: 10 }, "the publisher's retry finds them stored");
    });
  }
}
