import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import type { Config } from '../../src/config.js';
import { makeEvent } from '../helpers/events.js';
import { eventually } from '../helpers/eventually.js';
import { startAggregator, type TestAggregator } from '../helpers/in-process.js';
import { spawnServer } from '../helpers/server-process.js';
import type { TestClient } from '../helpers/client.js';
import type { TestStore } from '../helpers/stores.js';
import { retentionSettings } from './retention.js';
import { createLogger } from '../../src/logger.js';
import { openEventReader } from '../../src/store/open.js';
import type { TouchedTopics } from '../../src/stream/commit-signal.js';
import { ConsumerLongPolls } from '../../src/stream/long-polls.js';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ConsumerSchema } from '../../src/http/schemas/consumers.js';

type Start = (t: Test, overrides?: Partial<Config>) => Promise<TestAggregator>;

const put = (client: TestClient, name: string, definition: unknown) => client.request('PUT', `/consumers/${name}`, definition);
const poll = (client: TestClient, name: string, query = '') => client.request('GET', `/consumers/${name}/events${query}`);
const commit = (client: TestClient, name: string, seq: number, query = '') =>
  client.request('POST', `/consumers/${name}/commit${query}`, { seq });

/** Publishes one event per topic given, in order, and returns them as stored (with seq and received_at). */
async function publishTopics(t: Test, client: TestClient, topics: string[]): Promise<any[]> {
  const events = topics.map((topic, i) => makeEvent({ topic, event_id: `${topic}-${i}-${Math.random()}` }));
  t.equal((await client.publish(events)).status, 200, `published ${topics.length} events`);
  const stored: any[] = await client.get('/events?limit=10000');
  const ids = new Set(events.map((e) => e.event_id));
  return stored.filter((e) => ids.has(e.event_id));
}

/** Durable consumers as every store must serve them: README, "Durable consumers". */
export function consumersSuite(store: TestStore): void {
  const start: Start = async (t, overrides = {}) => startAggregator(t, { ...(await store.fresh(t)), ...overrides });

  t.test('PUT creates (201), the same definition again is 200, another one 409; bad names 400; unknown 404 everywhere', async (t) => {
    const agg = await start(t);
    const created = await put(agg, 'billing.v1', { topics: ['orders.eu', 'orders.us'], start: 'earliest' });
    t.equal(created.status, 201);
    t.match(created.body, { name: 'billing.v1', topics: ['orders.eu', 'orders.us'], start: 'earliest', position: 0, last_commit_at: null });
    const again = await put(agg, 'billing.v1', { topics: ['orders.us', 'orders.eu', 'orders.us'], start: 'earliest' });
    t.equal(again.status, 200, 'the same topics in another order are the same definition');
    t.same(again.body, created.body);
    for (const other of [{ topics: ['orders.eu'], start: 'earliest' }, { topics: ['orders.eu', 'orders.us'], start: 'latest' }]) {
      const conflict = await put(agg, 'billing.v1', other);
      t.equal(conflict.status, 409);
      t.equal(conflict.body.code, 'CONSUMER_CONFLICT');
    }
    for (const bad of ['has%20space', 'x'.repeat(129), 'sl%2Fash', 'ü']) {
      const res = await put(agg, bad, { start: 'earliest' });
      t.equal(res.status, 400, `name ${bad} is refused`);
      t.equal(res.body.code, 'INVALID_CONSUMER');
    }
    t.equal((await put(agg, 'x'.repeat(128), { start: 'latest' })).status, 201, '128 characters are allowed');
    for (const body of [{}, { start: 'sometime' }, { start: -1 }, { topics: [''], start: 'earliest' }, { start: 'earliest', extra: 1 }]) {
      const res = await put(agg, 'ok', body);
      t.equal(res.status, 400, `definition ${JSON.stringify(body)} is refused`);
      t.equal(res.body.code, 'INVALID_BODY');
    }
    for (const [method, path, body] of [
      ['GET', '/consumers/nobody'], ['GET', '/consumers/nobody/events'], ['POST', '/consumers/nobody/commit', { seq: 0 }],
      ['DELETE', '/consumers/nobody'],
    ] as const) {
      const res = await agg.request(method, path, body);
      t.equal(res.status, 404, `${method} ${path}`);
      t.equal(res.body.code, 'UNKNOWN_CONSUMER');
    }
    t.equal((await agg.request('DELETE', '/consumers/billing.v1')).status, 204);
    t.equal((await agg.request('GET', '/consumers/billing.v1')).status, 404, 'deleted');
    t.equal((await put(agg, 'billing.v1', { start: 'latest' })).status, 201, 'the name is free again, for any definition');
  });

  t.test('events → commit → next page; the same events come again until committed; next never passes an event not returned', async (t) => {
    const agg = await start(t);
    const stored = await publishTopics(t, agg, Array(5).fill('orders.eu'));
    t.equal((await put(agg, 'c', { start: 'earliest' })).status, 201);
    const first = await poll(agg, 'c', '?limit=2');
    t.equal(first.status, 200);
    t.same(first.body.events, stored.slice(0, 2), 'the same items as /events');
    t.equal(first.body.next, stored[1].seq);
    t.same((await poll(agg, 'c', '?limit=2')).body, first.body, 'not committed: the same page again');
    const committed = await commit(agg, 'c', first.body.next);
    t.equal(committed.status, 200);
    t.match(committed.body, { name: 'c', position: stored[1].seq });
    t.ok(Date.parse(committed.body.last_commit_at) > 0, 'last_commit_at is set');
    const second = await poll(agg, 'c', '?limit=10');
    t.same(second.body.events.map((e: any) => e.seq), stored.slice(2).map((e) => e.seq));
    t.equal((await commit(agg, 'c', second.body.next)).status, 200);
    t.same((await poll(agg, 'c')).body, { events: [], next: stored[4].seq }, 'nothing left: next is the committed position');
    t.equal((await commit(agg, 'c', stored[4].seq)).status, 200, 'committing the same position again is harmless');
  });

  t.test('start latest and <seq>; rewind needs ?rewind=true and replays; a commit beyond the last seq is 409', async (t) => {
    const agg = await start(t);
    const stored = await publishTopics(t, agg, Array(4).fill('a'));
    t.equal((await put(agg, 'late', { start: 'latest' })).body.position, stored[3].seq, 'latest: the last seq now');
    t.same((await poll(agg, 'late')).body.events, []);
    t.equal((await put(agg, 'mid', { start: stored[1].seq })).body.position, stored[1].seq);
    t.same((await poll(agg, 'mid')).body.events.map((e: any) => e.seq), [stored[2].seq, stored[3].seq]);

    t.equal((await commit(agg, 'mid', stored[3].seq)).status, 200);
    const back = await commit(agg, 'mid', stored[0].seq);
    t.equal(back.status, 409);
    t.equal(back.body.code, 'COMMIT_BACKWARDS');
    const rewound = await commit(agg, 'mid', stored[0].seq, '?rewind=true');
    t.equal(rewound.status, 200);
    t.equal(rewound.body.position, stored[0].seq);
    t.same((await poll(agg, 'mid')).body.events.map((e: any) => e.seq), stored.slice(1).map((e) => e.seq), 'replayed');
    const beyond = await commit(agg, 'mid', stored[3].seq + 1_000_000);
    t.equal(beyond.status, 409);
    t.equal(beyond.body.code, 'COMMIT_BEYOND_END');
    t.equal((await agg.request('GET', '/consumers/mid')).body.position, stored[0].seq, 'refused commits change nothing');
    t.equal((await agg.request('POST', '/consumers/mid/commit', { seq: 'x' })).body.code, 'INVALID_BODY');
  });

  t.test('topic filtering: only the consumer\'s topics, merged in commit order', async (t) => {
    const agg = await start(t);
    t.equal((await put(agg, 'ac', { topics: ['a', 'c'], start: 'earliest' })).status, 201);
    const stored = await publishTopics(t, agg, ['a', 'b', 'c', 'a', 'b', 'b', 'c', 'c', 'a']);
    const expected = stored.filter((e) => e.topic !== 'b').map((e) => e.seq);
    t.same((await poll(agg, 'ac')).body.events.map((e: any) => e.seq), expected);
    const page = await poll(agg, 'ac', '?limit=4');
    t.same(page.body.events.map((e: any) => e.seq), expected.slice(0, 4));
    t.equal(page.body.next, expected[3]);
  });

  t.test('wait_ms answers as soon as an event commits, and empty after the wait otherwise', async (t) => {
    const agg = await start(t);
    t.equal((await put(agg, 'w', { topics: ['wanted'], start: 'latest' })).status, 201);
    let started = performance.now();
    const empty = await poll(agg, 'w', '?wait_ms=400');
    const waited = performance.now() - started;
    t.same(empty.body, { events: [], next: empty.body.next });
    t.ok(waited >= 390 && waited < 3_000, `an empty long-poll waited ${waited.toFixed(0)} ms of 400`);

    started = performance.now();
    const pending = poll(agg, 'w', '?wait_ms=20000');
    await new Promise((resolve) => setTimeout(resolve, 300));
    await publishTopics(t, agg, ['other']);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const [event] = await publishTopics(t, agg, ['wanted']);
    const published = performance.now();
    const answer = await pending;
    const latency = performance.now() - published;
    t.same(answer.body.events.map((e: any) => e.seq), [event.seq], 'woken by the matching event, not by the other topic');
    t.ok(latency < 2_000, `answered ${latency.toFixed(0)} ms after the publish (${(performance.now() - started).toFixed(0)} ms in all)`);
    t.equal((await poll(agg, 'w', '?wait_ms=30001')).body.code, 'INVALID_QUERY', 'wait_ms is at most 30000');
  });

  t.test('100 long-polls of one topic: another topic\'s publish wakes none (no 503), one of theirs answers all', async (t) => {
    const agg = await start(t);
    const names = Array.from({ length: 100 }, (_, i) => `lp-${i}`);
    for (const name of names) t.equal((await put(agg, name, { topics: ['A'], start: 'latest' })).status, 201);
    const answered: number[] = [];
    const polls = names.map((name, i) => poll(agg, name, '?wait_ms=25000').then((reply) => {
      answered.push(i);
      return reply;
    }));
    // Time for the polls' first reads to find nothing and start waiting (a poll still reading later is no harm).
    await new Promise((resolve) => setTimeout(resolve, 500));
    await publishTopics(t, agg, ['B']);
    await new Promise((resolve) => setTimeout(resolve, 500));
    t.same(answered, [], 'a publish on another topic answers no long-poll');
    const [event] = await publishTopics(t, agg, ['A']);
    const replies = await Promise.all(polls);
    t.same(replies.map((r) => r.status), names.map(() => 200), 'every long-poll answered 200 (none 503 READERS_BUSY)');
    t.ok(replies.every((r) => r.body.events.length === 1 && r.body.events[0].seq === event.seq), 'each with the event of its topic');
  });

  t.test('a long-poll reads again for commits of its topics only (this replica\'s and, through NOTIFY, any other\'s)', async (t) => {
    const agg = await start(t);
    t.equal((await put(agg, 'only-a', { topics: ['A'], start: 'latest' })).status, 201);
    const reader = await openEventReader(agg.config, createLogger('silent', 'test'));
    t.teardown(() => reader.close());
    let reads = 0;
    const longPolls = new ConsumerLongPolls({
      consumerPage: async (name, limit) => {
        const page = await reader.consumerPage(name, limit);
        reads++;
        return page;
      },
    }, agg.commits);
    const ended = new AbortController();
    t.teardown(() => ended.abort());
    const seen: TouchedTopics[] = [];
    agg.commits.listen((topics) => seen.push(topics));
    const pending = longPolls.poll('only-a', 10, 20_000, ended.signal);
    await eventually(async () => reads, { what: 'the first read done', timeout: 5_000, interval: 10, until: (n) => n === 1 });
    for (let i = 0; i < 5; i++) await publishTopics(t, agg, ['B']);
    // Time for the wake-ups of those commits (PostgreSQL's NOTIFY comes back over the network) to arrive.
    await new Promise((resolve) => setTimeout(resolve, 300));
    t.ok(seen.filter((topics) => JSON.stringify(topics) === '["B"]').length >= 5, 'the five commits were signalled, naming B');
    // A wake-up for any topic (PostgreSQL's listener connecting, late on a busy machine) reads again, by design.
    t.equal(reads, 1 + seen.filter((topics) => topics === undefined).length, 'five commits of another topic made no read');
    const [event] = await publishTopics(t, agg, ['A']);
    const page = (await pending)!;
    t.same(JSON.parse(Buffer.from(page.events).toString()).map((e: any) => e.seq), [event.seq], 'the commit of its topic answered it');
  });

  t.test('a commit of the `next` a page returned is accepted after retention purged those events (also their keys)', async (t) => {
    for (const env of [{ RETENTION: 'gone=1s' }, { DEDUP_WINDOW: '1s' }] as Record<string, string>[]) {
      const agg = await start(t, retentionSettings(env));
      t.equal((await put(agg, 'late-committer', { start: 'earliest' })).status, 201);
      const stored = await publishTopics(t, agg, ['gone', 'gone', 'gone']);
      const page = await poll(agg, 'late-committer');
      t.same(page.body.events.map((e: any) => e.seq), stored.map((e) => e.seq), `${JSON.stringify(env)}: the page before the purge`);
      await eventually(async () => ({ events: await agg.get('/events'), stats: await agg.get('/stats') }), {
        what: 'every event purged (and, with DEDUP_WINDOW, its key forgotten)', timeout: 15_000, interval: 100,
        // SQLite forgets a key already outside the window with its event; PostgreSQL keeps a tombstone until its next forget step.
        until: ({ events, stats }) => events.length === 0 && (!env.DEDUP_WINDOW || agg.config.store === 'sqlite' || stats.store.dedup_keys === 0),
      });
      const committed = await commit(agg, 'late-committer', page.body.next);
      t.equal(committed.status, 200, `${JSON.stringify(env)}: committing next is accepted (${committed.body.code ?? 'ok'})`);
      t.equal(committed.body.position, page.body.next);
      t.equal((await commit(agg, 'late-committer', page.body.next + 1)).body.code, 'COMMIT_BEYOND_END', 'one past it is still refused');
    }
  });

  t.test('consumer bodies are validated strictly: nothing is coerced; refused bodies change nothing', async (t) => {
    const agg = await start(t);
    const stored = await publishTopics(t, agg, ['s', 's', 's', 's', 's', 's', 's', 's']);
    for (const body of [{ start: '5' }, { start: true }, { start: null }, { start: [5] }, { start: 5.5 }, { topics: 'a', start: 'earliest' },
      { topics: [1], start: 'earliest' }, { topics: null, start: 'earliest' }]) {
      const res = await put(agg, 'strict', body);
      t.equal(res.status, 400, `definition ${JSON.stringify(body)} is refused`);
      t.equal(res.body.code, 'INVALID_BODY');
    }
    t.equal((await agg.request('GET', '/consumers/strict')).status, 404, 'no consumer was created');
    t.equal((await put(agg, 'strict', { start: stored[2].seq })).status, 201);
    for (const body of [{ seq: true }, { seq: null }, { seq: '0x3' }, { seq: [7] }, { seq: String(stored[4].seq) }, { seq: false }, {}, [], null]) {
      for (const query of ['', '?rewind=true']) {
        const res = await agg.request('POST', `/consumers/strict/commit${query}`, body);
        t.equal(res.status, 400, `commit ${JSON.stringify(body)}${query} is refused`);
        t.equal(res.body.code, 'INVALID_BODY');
      }
    }
    t.equal((await agg.get('/consumers/strict')).position, stored[2].seq, 'the position did not move');
    t.equal((await commit(agg, 'strict', stored[4].seq, '?rewind=false')).status, 200, 'the query is still read as text: rewind=false');
    t.equal((await commit(agg, 'strict', stored[3].seq, '?rewind=yes')).body.code, 'INVALID_QUERY');
  });

  t.test('consumer names: "." and ".." and any name over 128 characters get 400 INVALID_CONSUMER on every route', async (t) => {
    const agg = await start(t);
    // Over real HTTP, as URL-normalising clients (and Fastify's inject) would turn /consumers/.. into /.
    await agg.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = agg.app.server.address() as AddressInfo;
    const send = (method: string, path: string, body?: unknown) => new Promise<{ status: number; body: any }>((resolve, reject) => {
      const headers = body === undefined ? {} : { 'content-type': 'application/json' };
      const request = httpRequest({ host: '127.0.0.1', port, method, path, headers }, (res) => {
        let text = '';
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      });
      request.on('error', reject);
      request.end(body === undefined ? undefined : JSON.stringify(body));
    });
    for (const name of ['.', '..', 'x'.repeat(129), 'x'.repeat(1025), 'x'.repeat(8000)]) {
      for (const [method, path, body] of [
        ['PUT', '', { start: 'earliest' }], ['GET', ''], ['GET', '/events'], ['POST', '/commit', { seq: 0 }], ['DELETE', ''],
      ] as const) {
        const res = await send(method, `/consumers/${name}${path}`, body);
        t.equal(res.status, 400, `${method} /consumers/${name.slice(0, 10)}…(${name.length})${path}`);
        t.match(res.body, { statusCode: 400, error: 'Bad Request', code: 'INVALID_CONSUMER' });
      }
    }
    t.equal((await send('PUT', '/consumers/...', { start: 'earliest' })).status, 201, 'three dots are an ordinary name');
    t.equal((await send('GET', '/events/stream?consumer=..')).body.code, 'INVALID_CONSUMER', 'the stream\'s consumer= too');
  });

  t.test('every consumer answer is its documented schema, whole: the serializer drops no field', async (t) => {
    const agg = await start(t);
    const check = TypeCompiler.Compile(ConsumerSchema);
    const record = ['name', 'topics', 'start', 'position', 'owner', 'created_at', 'last_commit_at'];
    const status = [...record, 'lag', 'oldest_unconsumed_at'];
    const created = await put(agg, 'shape', { topics: ['a'], start: 'earliest' });
    const [event] = await publishTopics(t, agg, ['a']);
    const answers: [string, any, string[]][] = [
      ['PUT', created.body, record],
      ['commit', (await commit(agg, 'shape', event.seq)).body, record],
      ['GET one', await agg.get('/consumers/shape'), status],
      ['GET all', (await agg.get('/consumers'))[0], status],
    ];
    for (const [what, body, keys] of answers) {
      t.same(Object.keys(body), keys, `${what}: every field, in order`);
      t.same([...check.Errors(body)].map((e) => `${e.path}: ${e.message}`), [], `${what}: the schema, exactly`);
    }
    t.equal(answers[1]![1].position, event.seq);
    t.ok(Date.parse(answers[1]![1].last_commit_at) > 0);
  });

  t.test('since= and until= on a consumer\'s pages: the range, then end: true, which a long-poll answers at once', async (t) => {
    const agg = await start(t);
    t.equal((await put(agg, 'range', { start: 'earliest' })).status, 201);
    const stored: any[] = [];
    for (let i = 0; i < 3; i++) {
      stored.push(...await publishTopics(t, agg, ['a', 'b', 'a', 'b']));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const [a, b, c] = [0, 4, 8].map((i) => stored.slice(i, i + 4));
    t.ok(a![3].received_at < b![0].received_at && b![3].received_at < c![0].received_at, 'three received_at');
    const at = encodeURIComponent(b![0].received_at);
    const plain = await poll(agg, 'range', '?limit=2');
    t.notOk('end' in plain.body, 'without until=, no end field');
    t.same(plain.body.events, a!.slice(0, 2));

    const got: any[] = [];
    for (;;) {
      const page = await poll(agg, 'range', `?since=${at}&until=${at}&limit=3`);
      t.equal(page.status, 200);
      t.equal(page.headers['x-range-end'], String(c![0].seq - 1));
      if (page.body.events.length === 0) {
        t.same(page.body, { events: [], next: b![3].seq, end: true }, 'the empty page that ends the range says so');
        break;
      }
      t.equal(page.body.end, false);
      got.push(...page.body.events);
      t.equal((await commit(agg, 'range', page.body.next)).status, 200);
    }
    t.same(got, b, 'since= skips the events received before it, until= stops before those after it');
    const started = performance.now();
    const waited = await poll(agg, 'range', `?until=${at}&wait_ms=20000`);
    t.same(waited.body, { events: [], next: b![3].seq, end: true }, 'a long-poll of an ended range answers at once…');
    t.ok(performance.now() - started < 10_000, `…without waiting wait_ms (${Math.round(performance.now() - started)} ms)`);
    t.same((await poll(agg, 'range', '?limit=100')).body.events, c, 'without until=, the events after the range');

    const bad = await poll(agg, 'range', '?since=2026-11-24T10:00:01Z&until=2026-11-24T10:00:00Z');
    t.equal(bad.status, 400);
    t.equal(bad.body.code, 'INVALID_QUERY');
    t.match((await poll(agg, 'range', '?until=noon')).body, { code: 'INVALID_QUERY', message: /until/ });
  });

  t.test('lag and oldest_unconsumed_at; /metrics has the lag per consumer, /stats a summary', async (t) => {
    const agg = await start(t);
    t.equal((await put(agg, 'only-a', { topics: ['a'], start: 'earliest' })).status, 201);
    t.equal((await put(agg, 'all', { start: 'earliest' })).status, 201);
    const stored = await publishTopics(t, agg, ['b', 'a', 'b', 'a', 'a']);
    const aEvents = stored.filter((e) => e.topic === 'a');
    t.match(await agg.get('/consumers/only-a'), { lag: 3, oldest_unconsumed_at: aEvents[0].received_at, position: 0 });
    t.match(await agg.get('/consumers/all'), { lag: 5, oldest_unconsumed_at: stored[0].received_at });
    await commit(agg, 'only-a', aEvents[0].seq);
    t.match(await agg.get('/consumers/only-a'), { lag: 2, oldest_unconsumed_at: aEvents[1].received_at });
    await commit(agg, 'only-a', stored.at(-1).seq);
    t.match(await agg.get('/consumers/only-a'), { lag: 0, oldest_unconsumed_at: null });
    t.same((await agg.get('/consumers')).map((c: any) => [c.name, c.lag]), [['all', 5], ['only-a', 0]]);

    const metrics = await eventually(() => agg.request('GET', '/metrics'), {
      what: 'the lag gauge', timeout: 10_000, interval: 100,
      until: (res) => /aggregator_consumer_lag\{[^}]*consumer="all"[^}]*\} 5/.test(res.body) && /consumer="only-a"[^}]*\} 0/.test(res.body),
    });
    t.pass(`lag in /metrics: ${String(metrics.body).split('\n').filter((l: string) => l.startsWith('aggregator_consumer_lag')).join('; ')}`);
    t.match((await agg.get('/stats')).consumers, { count: 2, max_lag: 5 });
  });

  t.test('MAX_CONSUMERS: one more is 429 CONSUMER_LIMIT; existing ones still answer; a deletion makes room', async (t) => {
    const agg = await start(t, { maxConsumers: 2 });
    t.equal((await put(agg, 'one', { start: 'earliest' })).status, 201);
    t.equal((await put(agg, 'two', { start: 'earliest' })).status, 201);
    const third = await put(agg, 'three', { start: 'earliest' });
    t.equal(third.status, 429);
    t.equal(third.body.code, 'CONSUMER_LIMIT');
    t.equal((await put(agg, 'two', { start: 'earliest' })).status, 200, 'an idempotent PUT of an existing one is not counted');
    t.equal((await agg.request('DELETE', '/consumers/one')).status, 204);
    t.equal((await put(agg, 'three', { start: 'earliest' })).status, 201);
  });

  t.test('AUTH_READS: every consumer route needs a token; the read token manages consumers', async (t) => {
    const agg = await start(t, { authReads: true, authToken: 'publish-secret', authReadToken: 'read-secret' });
    const call = (method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, token?: string, body?: unknown) => agg.app.inject({
      method, url, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}), ...(body ? { payload: body } : {}),
    });
    for (const [method, url, body] of [
      ['PUT', '/consumers/r', { start: 'earliest' }], ['GET', '/consumers'], ['GET', '/consumers/r'],
      ['GET', '/consumers/r/events'], ['POST', '/consumers/r/commit', { seq: 0 }], ['DELETE', '/consumers/r'],
    ] as const) {
      t.equal((await call(method, url, undefined, body)).statusCode, 401, `${method} ${url} without a token`);
      t.equal((await call(method, url, 'wrong', body)).statusCode, 401, `${method} ${url} with a wrong token`);
    }
    t.equal((await call('PUT', '/consumers/r', 'read-secret', { start: 'earliest' })).statusCode, 201);
    t.equal((await call('GET', '/consumers/r/events', 'read-secret')).statusCode, 200);
    t.equal((await call('POST', '/consumers/r/commit', 'read-secret', { seq: 0 })).statusCode, 200);
    t.equal((await call('GET', '/consumers/r', 'publish-secret')).statusCode, 200, 'the publish token reads too');
    t.equal((await call('DELETE', '/consumers/r', 'read-secret')).statusCode, 204);
  });

  t.test('committed positions survive SIGTERM and kill -9 of a spawned server', async (t) => {
    const settings = await store.fresh(t);
    let server = await spawnServer(settings.dbPath, store.env(settings));
    t.teardown(() => server.kill());
    t.equal((await put(server, 'durable', { topics: ['d'], start: 'earliest' })).status, 201);
    const stored = await publishTopics(t, server, ['d', 'd', 'x', 'd']);
    t.equal((await commit(server, 'durable', stored[0].seq)).status, 200);
    t.equal((await put(server, 'idle', { topics: ['never'], start: 'latest' })).status, 201);
    const longPoll = poll(server, 'idle', '?wait_ms=25000');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const stopping = performance.now();
    t.equal(await server.stop(), 0, 'SIGTERM: a clean exit');
    const stopMs = performance.now() - stopping;
    t.ok(stopMs < 2_000, `the stop took ${stopMs.toFixed(0)} ms: a pending long-poll does not hold it for its wait_ms`);
    t.match(await longPoll, { status: 200, body: { events: [] } }, 'the long-poll was answered (empty) before the stop');

    server = await spawnServer(settings.dbPath, store.env(settings));
    let page = await poll(server, 'durable');
    t.same(page.body.events.map((e: any) => e.seq), [stored[1].seq, stored[3].seq], 'after SIGTERM: from the committed position');
    t.equal((await commit(server, 'durable', stored[1].seq)).status, 200);
    await server.kill();

    server = await spawnServer(settings.dbPath, store.env(settings));
    page = await poll(server, 'durable');
    t.same(page.body.events.map((e: any) => e.seq), [stored[3].seq], 'after kill -9: the commit answered 200 is there');
    t.match(await server.get('/consumers/durable'), { lag: 1, topics: ['d'] });
  });
}
