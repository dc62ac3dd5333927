import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import type { Config } from '../../src/config.js';
import { logLine } from '../../perf/log-lines.js';
import { eventually } from '../helpers/eventually.js';
import { startAggregator, type TestAggregator } from '../helpers/in-process.js';
import { readAllEvents } from '../helpers/server-process.js';
import { openStream, orderProblems } from '../helpers/sse.js';
import type { TestStore } from '../helpers/stores.js';

const GZIP = { 'accept-encoding': 'gzip' };
const IDENTITY = { 'accept-encoding': 'identity' };

/** A GET over a real socket, its body as it came over the wire (not decoded). */
function getRaw(url: string, path: string, headers: Record<string, string>) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; wire: Buffer }>((resolve, reject) => {
    request(`${url}${path}`, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, wire: Buffer.concat(chunks) }));
      res.on('error', reject);
    }).on('error', reject).end();
  });
}

async function listening(t: Test, store: TestStore, overrides: Partial<Config> = {}): Promise<{ agg: TestAggregator; url: string }> {
  const agg = await startAggregator(t, { ...(await store.fresh(t)), ...overrides });
  await agg.app.listen({ port: 0, host: '127.0.0.1' });
  return { agg, url: `http://127.0.0.1:${(agg.app.server.address() as AddressInfo).port}` };
}

async function publishLogs(agg: TestAggregator, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i += 500) {
    const res = await agg.publish(Array.from({ length: Math.min(500, from + count - i) }, (_, k) => logLine(i + k)));
    if (res.status !== 200) throw new Error(`publish answered ${res.status}`);
  }
}

/**
 * `Accept-Encoding: gzip` on /events, /events/stream and durable consumer pages, on every store: the
 * decoded body is the uncompressed one byte for byte, a stream's frames arrive as written, and resuming
 * under gzip skips and repeats nothing.
 */
export function compressedReadsSuite(store: TestStore): void {
  t.test('/events and consumer pages under gzip: the same bytes decoded, ≥ 2 × fewer on the wire; q-values, identity, tiny bodies, errors', async (t) => {
    const { agg, url } = await listening(t, store);
    await publishLogs(agg, 0, 1_000);
    t.equal((await agg.request('PUT', '/consumers/c', { start: 'earliest' })).status, 201);

    for (const path of ['/events?limit=1000', '/events?topic=api.access-1&after=100&limit=300', '/consumers/c/events?limit=1000']) {
      const plain = await getRaw(url, path, IDENTITY);
      const gzipped = await getRaw(url, path, GZIP);
      t.equal(plain.status, 200, `${path}: 200`);
      t.equal(plain.headers['content-encoding'], undefined, `${path}: identity is not encoded`);
      t.equal(Number(plain.headers['content-length']), plain.wire.length, `${path}: identity has its Content-Length`);
      t.equal(gzipped.headers['content-encoding'], 'gzip', `${path}: gzip asked, gzip sent`);
      t.equal(gzipped.headers['content-type'], 'application/json; charset=utf-8');
      for (const answer of [plain, gzipped]) t.equal(answer.headers.vary, 'Accept-Encoding', `${path}: Vary`);
      t.ok(gunzipSync(gzipped.wire).equals(plain.wire), `${path}: decoded, the very bytes of the uncompressed answer`);
      const ratio = plain.wire.length / gzipped.wire.length;
      t.ok(ratio >= 2, `${path}: ${plain.wire.length} bytes plain, ${gzipped.wire.length} gzipped (${ratio.toFixed(1)} ×)`);
      // A real client: fetch asks for gzip by itself and decodes it.
      const fetched = await fetch(`${url}${path}`);
      t.same(await fetched.json(), JSON.parse(plain.wire.toString()), `${path}: fetch reads the same JSON`);
    }

    const negotiated = async (acceptEncoding: string) => (await getRaw(url, '/events?limit=100', { 'accept-encoding': acceptEncoding })).headers['content-encoding'];
    t.equal(await negotiated('gzip;q=0, identity'), undefined, 'gzip;q=0: not compressed');
    t.equal(await negotiated('gzip;q=0.5, identity'), undefined, 'identity preferred by q-value');
    t.equal(await negotiated('identity;q=0.2, gzip;q=0.8'), 'gzip', 'gzip preferred by q-value');
    t.equal(await negotiated('*'), 'gzip', '*: gzip');
    t.equal(await negotiated('br, deflate'), undefined, 'none we send: identity');
    t.equal(await negotiated('GZIP'), 'gzip', 'codings are case-insensitive');

    const empty = await getRaw(url, '/events?topic=nothing.here', GZIP);
    t.same([empty.headers['content-encoding'], empty.wire.toString()], [undefined, '[]'], 'a tiny body goes out as it is');
    const refused = await getRaw(url, '/events?limit=0', GZIP);
    t.equal(refused.status, 400);
    t.equal(refused.headers['content-encoding'], undefined, 'an error is not compressed');
    t.equal(JSON.parse(refused.wire.toString()).code, 'INVALID_QUERY', 'an error stays readable JSON');
  });

  t.test('a stream under gzip: frames flushed as written (catch-up, then a live publish arrives at once), ≥ 2 × fewer bytes', async (t) => {
    const { agg, url } = await listening(t, store, { sseKeepAliveMs: 200 });
    await publishLogs(agg, 0, 3_000);
    const plain = await openStream(url, '/events/stream?after=0', IDENTITY);
    const gzipped = await openStream(url, '/events/stream?after=0', GZIP);
    t.equal(gzipped.headers['content-encoding'], 'gzip');
    t.equal(gzipped.headers.vary, 'Accept-Encoding');
    t.equal(plain.headers['content-encoding'], undefined);
    await Promise.all([plain.waitFor(3_000, 30_000), gzipped.waitFor(3_000, 30_000)]);
    t.equal(gzipped.retry, 1000, 'retry: came through gzip');
    const ratio = plain.wireBytes / gzipped.wireBytes;
    t.ok(ratio >= 2, `catch-up of 3,000 log events: ${plain.wireBytes} bytes plain, ${gzipped.wireBytes} gzipped (${ratio.toFixed(1)} ×)`);

    // The connection stays open: the event arrives only if the server flushed the compressor after writing it.
    const published = performance.now();
    await publishLogs(agg, 3_000, 1);
    await gzipped.waitFor(3_001, 15_000);
    t.ok(performance.now() - published < 15_000, `a live event arrived ${(performance.now() - published).toFixed(0)} ms after its publish`);
    await eventually(() => gzipped.comments.length, { what: 'a keep-alive through gzip', timeout: 15_000, interval: 10, until: (n) => n >= 1 });
    await plain.waitFor(3_001, 15_000);
    t.same(gzipped.events, plain.events, 'the same frames as the uncompressed stream');
    plain.close();
    gzipped.close();
  });

  t.test('resume with Last-Event-ID under gzip: every event once, in order', async (t) => {
    const { agg, url } = await listening(t, store);
    await publishLogs(agg, 0, 1_500);
    const received: number[] = [];
    let last: string | undefined;
    for (let round = 0; round < 3; round++) {
      const stream = await openStream(url, '/events/stream?after=0', { ...GZIP, ...(last === undefined ? {} : { 'last-event-id': last }) });
      t.equal(stream.headers['content-encoding'], 'gzip');
      await stream.waitFor(200, 20_000);
      stream.close();
      await stream.ended;
      received.push(...stream.ids);
      last = String(received.at(-1));
      await publishLogs(agg, 1_500 + round * 100, 100);
    }
    const stored = (await readAllEvents((path) => agg.get(path))).map((e) => e.seq as number);
    t.equal(stored.length, 1_800);
    const rest = await openStream(url, '/events/stream', { ...GZIP, 'last-event-id': last! });
    await eventually(() => rest.ids.at(-1), { what: 'the rest', timeout: 20_000, until: (id) => id === stored.at(-1) });
    rest.close();
    received.push(...rest.ids);
    t.same(orderProblems(received), [], 'strictly increasing across the reconnects');
    t.same(received, stored, 'every stored event exactly once');
  });

  t.test('a stalled gzip subscriber: the compressor\'s buffers count against its share; dropped after REQUEST_TIMEOUT_MS', async (t) => {
    const { agg, url } = await listening(t, store, { requestTimeoutMs: 1_500 });
    const stream = await openStream(url, '/events/stream', GZIP);
    t.equal(stream.headers['content-encoding'], 'gzip');
    stream.pause();
    // Random payloads, which gzip cannot shrink: the socket and the compressor's output fill as fast as its input.
    const blob = () => randomBytes(2_000).toString('base64');
    for (let i = 0; i < 60; i++) {
      const res = await agg.publish(Array.from({ length: 100 }, () => ({ ...logLine(i), payload: { blob: blob() } })));
      t.equal(res.status, 200);
    }
    await eventually(async () => (await agg.get('/stats')).subscribers, { what: 'the server to drop it', timeout: 30_000, until: (n) => n === 0 });
    stream.close();
  });
}
