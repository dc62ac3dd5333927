import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { createAggregator } from '../../src/aggregator.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { parseRetentionRules } from '../../src/retention.js';
import type { TestClient } from '../helpers/client.js';
import { makeEvent } from '../helpers/events.js';
import { eventually } from '../helpers/eventually.js';
import { startAggregator, type TestAggregator } from '../helpers/in-process.js';
import { metricValue } from '../helpers/metrics.js';
import { openStream } from '../helpers/sse.js';
import type { TestStore } from '../helpers/stores.js';
import { bearer, clientWith, globMatches, writeTokenFile, type TestToken } from '../helpers/tokens.js';

const WRITER: TestToken = { name: 'orders-writer', secret: 'w-secret', publish: ['orders.*'] };
const READER: TestToken = { name: 'orders-reader', secret: 'r-secret', read: ['orders.*'] };
const TEAM: TestToken = { name: 'orders-team', secret: 't-secret', publish: ['orders.*'], read: ['orders.*'] };
const BILLING: TestToken = { name: 'billing', secret: 'b-secret', publish: ['billing.*'], read: ['billing.*'] };
const OPS: TestToken = { name: 'ops', secret: 'o-secret', admin: true };
const TOKENS = [WRITER, READER, TEAM, BILLING, OPS];

interface Served {
  agg: TestAggregator;
  url: string;
  file: string;
  /** A client sending this token (undefined: no Authorization; a string: that header as it is). */
  as(token: TestToken | string | undefined): TestClient;
}

/** An aggregator with AUTH_TOKENS_FILE on a fresh store of this kind, listening on a real port (streams need one). */
async function serve(t: Test, store: TestStore, tokens: readonly TestToken[] = TOKENS, overrides: Partial<Config> = {}): Promise<Served> {
  const settings = await store.fresh(t);
  const file = join(dirname(settings.dbPath), 'tokens.json');
  writeTokenFile(file, tokens);
  const agg = await startAggregator(t, { ...settings, authTokensFile: file, ...overrides });
  await agg.app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(agg.app.server.address() as AddressInfo).port}`;
  const as = (token: TestToken | string | undefined) => clientWith(url, typeof token === 'object' ? bearer(token.secret) : token);
  return { agg, url, file, as };
}

/** The status a stream request gets (its headers), closing it at once. */
async function streamStatus(url: string, path: string, token: TestToken | string | undefined): Promise<{ status: number; code?: string }> {
  const stream = await openStream(url, path, token === undefined ? {} : { authorization: typeof token === 'object' ? bearer(token.secret) : token });
  stream.close();
  return { status: stream.status, code: stream.error?.code };
}

const topicsOf = (events: any[]) => [...new Set(events.map((e) => e.topic as string))].sort();

/** Every event a client may read through /events, paged small so that filtered pages are followed too. */
async function readAll(client: TestClient, query = ''): Promise<any[]> {
  const all: any[] = [];
  for (let after = 0; ;) {
    const page: any[] = await client.get(`/events?after=${after}&limit=3${query}`);
    if (page.length === 0) return all;
    all.push(...page);
    after = page[page.length - 1].seq;
  }
}

async function topicPages(client: TestClient): Promise<string[]> {
  const all: string[] = [];
  for (let after = ''; ;) {
    const page: { topic: string }[] = await client.get(`/topics?limit=2&after=${encodeURIComponent(after)}`);
    if (page.length === 0) return all;
    all.push(...page.map((row) => row.topic));
    after = all[all.length - 1]!;
  }
}

/** Tokens scoped to topics (README, "Access control"), on SQLite and PostgreSQL alike. */
export function tokensSuite(store: TestStore): void {
  t.test('every route × right: publish-only, read-only, both, admin, no token, a wrong token', async (t) => {
    const { agg, url, as } = await serve(t, store);
    t.equal((await as(OPS).publish([makeEvent({ topic: 'orders.eu' }), makeEvent({ topic: 'billing.eu' })])).status, 200);
    await agg.settle();
    const rights = { writer: WRITER, reader: READER, team: TEAM, admin: OPS, none: undefined, wrong: bearer('not-a-token') } as const;
    type Right = keyof typeof rights;
    const everyone = (status: number): Record<Right, number> => ({ writer: status, reader: status, team: status, admin: status, none: 401, wrong: 401 });
    const cases: [method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body: unknown, expected: Record<Right, number | [number, string]>][] = [
      ['POST', '/publish', makeEvent({ topic: 'orders.us' }), { ...everyone(200), reader: [403, 'TOPIC_FORBIDDEN'] }],
      ['POST', '/publish', makeEvent({ topic: 'billing.us' }), { ...everyone(403), admin: 200 }],
      ['GET', '/events', undefined, everyone(200)],
      ['GET', '/events?topic=orders.eu', undefined, { ...everyone(200), writer: [403, 'TOPIC_FORBIDDEN'] }],
      ['GET', '/events?topic=billing.eu', undefined, { ...everyone(403), admin: 200 }],
      ['GET', '/topics', undefined, everyone(200)],
      ['GET', '/stats', undefined, everyone(200)],
      ['GET', '/metrics', undefined, { ...everyone(403), writer: [403, 'ADMIN_REQUIRED'], admin: 200 }],
      ['PUT', '/consumers/c-{right}', { topics: ['orders.eu'], start: 'earliest' }, { ...everyone(201), writer: [403, 'TOPIC_FORBIDDEN'] }],
      ['PUT', '/consumers/all-{right}', { start: 'earliest' }, { ...everyone(403), admin: 201 }],
      ['GET', '/consumers', undefined, everyone(200)],
      ['GET', '/consumers/c-{right}/events', undefined, { ...everyone(200), writer: 404 }],
      ['POST', '/consumers/c-{right}/commit', { seq: 0 }, { ...everyone(200), writer: 404 }],
      ['DELETE', '/consumers/c-{right}', undefined, { ...everyone(204), writer: 404 }],
      ['GET', '/', undefined, everyone(200)],
      ['GET', '/docs/json', undefined, everyone(200)],
      ['GET', '/no-such-route', undefined, everyone(404)],
      ['GET', '/healthz', undefined, { ...everyone(200), none: 200, wrong: 200 }],
      ['GET', '/readyz', undefined, { ...everyone(200), none: 200, wrong: 200 }],
    ];
    for (const [method, pathTemplate, body, expected] of cases) {
      for (const [right, token] of Object.entries(rights) as [Right, TestToken | string | undefined][]) {
        const path = pathTemplate.replace('{right}', right);
        const res = await as(token).request(method, path, body);
        const [status, code] = typeof expected[right] === 'number' ? [expected[right], undefined] : expected[right];
        t.equal(res.status, status, `${method} ${path} as ${right}`);
        if (code) t.equal(res.body.code, code, `${method} ${path} as ${right}: ${code}`);
        if (res.status === 401) t.equal(res.body.code, 'UNAUTHORIZED');
      }
    }
    const streams: [string, Record<Right, number>][] = [
      ['/events/stream', everyone(200)],
      ['/events/stream?topic=orders.eu', { ...everyone(200), writer: 403 }],
      ['/events/stream?topic=orders.eu&topic=billing.eu', { ...everyone(403), admin: 200 }],
    ];
    for (const [path, expected] of streams) {
      for (const [right, token] of Object.entries(rights) as [Right, TestToken | string | undefined][]) {
        const { status, code } = await streamStatus(url, path, token);
        t.equal(status, expected[right], `GET ${path} as ${right}`);
        if (status === 403) t.equal(code, 'TOPIC_FORBIDDEN');
      }
    }
  });

  t.test('a batch with any forbidden event is refused whole, even when another event is invalid; nothing is stored or counted', async (t) => {
    const { agg, as } = await serve(t, store);
    const before = await as(OPS).get('/stats');
    const mixed = [makeEvent({ topic: 'orders.eu' }), { ...makeEvent({ topic: 'orders.eu' }), timestamp: 'yesterday' }, makeEvent({ topic: 'billing.eu' })];
    const res = await as(TEAM).publish(mixed);
    t.equal(res.status, 403);
    t.match(res.body, { statusCode: 403, error: 'Forbidden', code: 'TOPIC_FORBIDDEN', message: /orders-team may not publish to topic "billing\.eu"/ });
    t.equal((await as(TEAM).publish({ events: [makeEvent({ topic: 'orders.eu' })] })).status, 200, 'a batch of its own topics is published');
    await agg.settle();
    const after = await as(OPS).get('/stats');
    t.equal(after.received, before.received + 1, 'only the allowed batch was received');
    t.equal(after.rejected.invalid_requests, before.rejected.invalid_requests, 'the forbidden batch is not counted as invalid');
    t.same(topicsOf(await readAll(as(OPS))), ['orders.eu']);
  });

  t.test('consumers belong to the token that created them; an admin may use any; GET /consumers lists one\'s own', async (t) => {
    const { url, as } = await serve(t, store);
    t.equal((await as(TEAM).publish(makeEvent({ topic: 'orders.eu' }))).status, 200);
    const created = await as(READER).request('PUT', '/consumers/mine', { topics: ['orders.eu'], start: 'earliest' });
    t.equal(created.status, 201);
    t.equal(created.body.owner, 'orders-reader');
    for (const [method, path, body] of [
      ['GET', '/consumers/mine'], ['GET', '/consumers/mine/events'], ['POST', '/consumers/mine/commit', { seq: 0 }],
      ['DELETE', '/consumers/mine'], ['PUT', '/consumers/mine', { topics: ['orders.eu'], start: 'earliest' }],
    ] as const) {
      const res = await as(TEAM).request(method, path, body);
      t.equal(res.status, 403, `${method} ${path} by another token that may read the same topics`);
      t.equal(res.body.code, 'CONSUMER_FORBIDDEN');
    }
    const stolen = await streamStatus(url, '/events/stream?consumer=mine', TEAM);
    t.same(stolen, { status: 403, code: 'CONSUMER_FORBIDDEN' }, 'nor stream from it');
    t.equal((await as(TEAM).request('PUT', '/consumers/theirs', { topics: ['orders.us'], start: 'earliest' })).status, 201);
    t.same((await as(READER).get('/consumers')).map((c: any) => c.name), ['mine'], 'a token lists its own');
    t.same((await as(OPS).get('/consumers')).map((c: any) => [c.name, c.owner]), [['mine', 'orders-reader'], ['theirs', 'orders-team']], 'an admin lists all');
    const page = await as(READER).get('/consumers/mine/events');
    t.same(page.events.map((e: any) => e.topic), ['orders.eu'], 'the owner reads it');
    t.equal((await as(OPS).request('POST', '/consumers/mine/commit', { seq: page.next })).status, 200, 'an admin commits it');
    t.equal((await as(OPS).request('DELETE', '/consumers/mine')).status, 204, 'and deletes it');
  });

  t.test('a consumer created without a tokens file has no owner: under one, only an admin may use it', async (t) => {
    const settings = await store.fresh(t);
    // Without startAggregator, whose teardown would close it a second time.
    const open = await createAggregator({ ...loadConfig([], {}), logLevel: 'silent', ...settings }, createLogger('silent', 'test'));
    try {
      const created = await open.app.inject({ method: 'PUT', url: '/consumers/legacy', payload: { topics: ['orders.eu'], start: 'earliest' } });
      t.equal(created.statusCode, 201);
    } finally {
      await open.close();
    }
    const file = join(dirname(settings.dbPath), 'tokens.json');
    writeTokenFile(file, TOKENS);
    const agg = await startAggregator(t, { ...settings, authTokensFile: file });
    const as = (token: TestToken) => ({ authorization: bearer(token.secret) });
    const reader = await agg.app.inject({ method: 'GET', url: '/consumers/legacy', headers: as(READER) });
    t.equal(reader.statusCode, 403);
    t.equal(reader.json().code, 'CONSUMER_FORBIDDEN');
    const admin = await agg.app.inject({ method: 'GET', url: '/consumers/legacy', headers: as(OPS) });
    t.equal(admin.statusCode, 200);
    t.equal(admin.json().owner, null);
  });

  t.test('a consumer whose topics the token may no longer read is refused after the file narrows its rights', async (t) => {
    const { agg, file, as } = await serve(t, store);
    t.equal((await as(TEAM).request('PUT', '/consumers/c', { topics: ['orders.eu'], start: 'earliest' })).status, 201);
    writeTokenFile(file, TOKENS.map((token) => (token === TEAM ? { ...TEAM, read: ['orders.us'] } : token)));
    t.equal(agg.reloadTokens('test'), true);
    const res = await as(TEAM).request('GET', '/consumers/c/events');
    t.equal(res.status, 403);
    t.equal(res.body.code, 'TOPIC_FORBIDDEN');
  });

  t.test('purges of topics a token may not read are never told to it: no header, no gap', async (t) => {
    const { url, as } = await serve(t, store, TOKENS, { retention: parseRetentionRules('billing.*=1') });
    const billing = Array.from({ length: 3 }, () => makeEvent({ topic: 'billing.eu' }));
    t.equal((await as(OPS).publish([...billing, makeEvent({ topic: 'orders.eu' }), makeEvent({ topic: 'orders.us' })])).status, 200);
    await eventually(() => as(OPS).get('/events?topic=billing.eu'), {
      what: 'billing.eu purged to its last event', timeout: 20_000, interval: 50, until: (page) => page.length === 1,
    });
    const admin = await as(OPS).request('GET', '/events?after=0');
    t.ok(admin.headers['x-purged-through'], 'an admin is told of the purge');
    const reader = await as(READER).request('GET', '/events?after=0');
    t.same(topicsOf(reader.body), ['orders.eu', 'orders.us']);
    t.equal(reader.headers['x-purged-through'], undefined, 'the reader is not: none of its topics lost anything');

    const adminStream = await openStream(url, '/events/stream?after=0', { authorization: bearer(OPS.secret) });
    const readerStream = await openStream(url, '/events/stream?after=0', { authorization: bearer(READER.secret) });
    try {
      await adminStream.waitFor(4);
      t.equal(adminStream.events[0]!.event, 'gap', 'the admin\'s stream starts with the gap');
      await readerStream.waitFor(2);
      t.same(readerStream.events.map((e) => e.event), ['event', 'event'], 'the reader\'s has no gap');
      t.same(readerStream.events.map((e) => JSON.parse(e.data).topic), ['orders.eu', 'orders.us']);
    } finally {
      adminStream.close();
      readerStream.close();
    }
  });

  t.test('streams of tokens with different read patterns catch up side by side, sharing pages only within a scope: each gets exactly its topics', async (t) => {
    const { url, as } = await serve(t, store);
    const topics = ['orders.eu', 'orders.us', 'billing.eu', 'billing.us'];
    const padding = 'x'.repeat(300);
    for (let i = 0; i < 8; i++) {
      const res = await as(OPS).publish(Array.from({ length: 500 }, (_, j) => makeEvent({ topic: topics[j % 4], payload: { padding } })));
      t.equal(res.status, 200);
    }
    const all = await readAll(as(OPS));
    const scopes = [READER, BILLING, OPS, READER, BILLING, OPS, READER, BILLING, OPS];
    const streams = await Promise.all(scopes.map((token) => openStream(url, '/events/stream?after=0', { authorization: bearer(token.secret) })));
    const expected = scopes.map((token) => all.filter((e) => token.admin || token.read!.some((p) => globMatches(p, e.topic))).map((e) => e.seq));
    try {
      await Promise.all(streams.map((stream, i) => stream.waitFor(expected[i]!.length, 30_000)));
      streams.forEach((stream, i) => t.same(stream.ids, expected[i], `${scopes[i]!.name}: exactly its topics' events, each once, in seq order`));
    } finally {
      for (const stream of streams) stream.close();
    }
    const metrics = String((await as(OPS).request('GET', '/metrics')).body);
    const shared = metricValue(metrics, 'aggregator_stream_catch_up_pages_total', { read: 'shared' });
    t.ok(shared > 0, `streams of one scope shared ${shared} pages`);
  });

  t.test('/stats of a token lists only its topics; store-wide counters stay; /metrics counts requests per token name', async (t) => {
    const { agg, as } = await serve(t, store);
    t.equal((await as(OPS).publish([makeEvent({ topic: 'orders.eu' }), makeEvent({ topic: 'billing.eu' }), makeEvent({ topic: 'billing.us' })])).status, 200);
    await agg.settle();
    const mine = await eventually(() => as(READER).get('/stats'), {
      what: 'the token\'s topic details', timeout: 10_000, interval: 50, until: (stats) => stats.topic_details.length === 1,
    });
    t.same(mine.topics, ['orders.eu']);
    t.same(Object.keys(mine.topic_events), ['orders.eu']);
    t.same(mine.topic_details.map((d: any) => d.topic), ['orders.eu']);
    t.equal(mine.topic_count, 1);
    t.equal(mine.received, 3, 'store-wide counters stay');
    t.equal((await as(OPS).get('/stats')).topic_count, 3, 'an admin sees every topic');
    const metrics: string = await as(OPS).get('/metrics');
    t.match(metrics, /aggregator_requests_by_token_total\{token="orders-reader",replica="[^"]*"\} [1-9]/);
    t.notMatch(metrics, /r-secret|o-secret/, 'never a token itself');
  });

  t.test('a token never sees a topic outside its read patterns, in any answer or stream (fuzzed topic names and patterns)', async (t) => {
    const { agg, url, file, as } = await serve(t, store);
    const published = new Set<string>();
    // Characters that mean something to regular expressions, LIKE and GLOB, and a non-ASCII one.
    const unit = fc.constantFrom('a', 'b', '.', '(', '[', ']', '\\', '$', '^', '+', '?', '%', '_', '|', '{', ' ', 'é', '*');
    const topic = fc.string({ unit, minLength: 1, maxLength: 5 }).filter((s) => s.trim() === s);
    const pattern = fc.string({ unit, minLength: 1, maxLength: 4 });
    let run = 0;
    const seed = Number(process.env.TOKEN_FUZZ_SEED ?? Date.now() % 2 ** 31);
    t.comment(`fuzz seed ${seed} (TOKEN_FUZZ_SEED replays it)`);
    await fc.assert(fc.asyncProperty(fc.uniqueArray(topic, { minLength: 1, maxLength: 6 }), fc.array(pattern, { maxLength: 3 }), async (topics, patterns) => {
      run++;
      const fresh = topics.filter((name) => !published.has(name));
      if (fresh.length > 0) {
        const res = await as(OPS).publish(fresh.map((name) => makeEvent({ topic: name })));
        if (res.status !== 200) throw new Error(`publish answered ${res.status}: ${JSON.stringify(res.body)}`);
        for (const name of fresh) published.add(name);
      }
      const scoped: TestToken = { name: 'scoped', secret: `s-${run}`, read: patterns };
      writeTokenFile(file, [OPS, scoped]);
      if (!agg.reloadTokens('test')) throw new Error('the token file was refused');
      const expected = [...published].filter((name) => patterns.some((p) => globMatches(p, name))).sort();
      const client = as(scoped);

      const events = await readAll(client);
      t.same(topicsOf(events), expected, `/events over every topic, patterns ${JSON.stringify(patterns)}`);
      t.same((await topicPages(client)).sort(), expected, '/topics');
      const stats = await client.get('/stats');
      t.same([...stats.topics].sort(), expected, '/stats topics');
      t.equal(stats.topic_count, expected.length, '/stats topic_count');
      for (const name of topics) {
        const res = await client.request('GET', `/events?topic=${encodeURIComponent(name)}`);
        t.equal(res.status, expected.includes(name) ? 200 : 403, `/events?topic=${name}`);
      }
      if (events.length > 0) {
        const stream = await openStream(url, '/events/stream?after=0', { authorization: bearer(scoped.secret) });
        try {
          await stream.waitFor(events.length);
          t.same(stream.ids.slice(0, events.length), events.map((e) => e.seq), 'the stream carries exactly the readable events');
          t.same(stream.events.filter((e) => e.event !== 'event'), [], 'and nothing else');
        } finally {
          stream.close();
        }
      }
      return true;
    }), { numRuns: Number(process.env.TOKEN_FUZZ_RUNS ?? 25), seed });
  });
}
