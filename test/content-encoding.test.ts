import { gzipSync } from 'node:zlib';
import t from 'tap';
import { makeEvent } from './helpers/events.js';
import { startAggregator } from './helpers/in-process.js';

const gzipped = (body: unknown) => gzipSync(Buffer.from(JSON.stringify(body)));
const headers = (encoding: string) => ({ 'content-type': 'application/json', 'content-encoding': encoding });

t.test('Content-Encoding: gzip bodies are inflated and stored like any other', async (t) => {
  const agg = await startAggregator(t);
  const events = Array.from({ length: 50 }, () => makeEvent());
  const res = await agg.app.inject({ method: 'POST', url: '/publish', headers: headers('gzip'), payload: gzipped(events) });
  t.equal(res.statusCode, 200);
  t.same(res.json(), { accepted: 50, unique: 50, duplicates: 0 });
  const stored = await agg.get('/events');
  t.same(stored.map((e: { event_id: string }) => e.event_id), events.map((e) => e.event_id));
  const again = await agg.app.inject({ method: 'POST', url: '/publish', headers: headers('x-gzip'), payload: gzipped(events[0]) });
  t.same(again.json(), { accepted: 1, unique: 0, duplicates: 1 }, 'x-gzip too');
});

t.test('a corrupt gzip body is 400, another encoding 415, and nothing is stored', async (t) => {
  const agg = await startAggregator(t);
  const good = gzipped(makeEvent());
  const corrupt = Buffer.concat([good.subarray(0, 12), Buffer.from('not deflate data at all'), good.subarray(12)]);
  const refused = await agg.app.inject({ method: 'POST', url: '/publish', headers: headers('gzip'), payload: corrupt });
  t.equal(refused.statusCode, 400);
  t.match(refused.json(), { code: 'INVALID_ENCODING', message: /the gzip body is corrupt/ });
  const truncated = await agg.app.inject({ method: 'POST', url: '/publish', headers: headers('gzip'), payload: good.subarray(0, good.length - 9) });
  t.equal(truncated.statusCode, 400, 'a truncated stream too');
  const plain = await agg.app.inject({ method: 'POST', url: '/publish', headers: headers('gzip'), payload: JSON.stringify(makeEvent()) });
  t.match(plain.json(), { code: 'INVALID_ENCODING' }, 'a body that says gzip but is not');
  for (const encoding of ['br', 'deflate', 'gzip, br']) {
    const res = await agg.app.inject({ method: 'POST', url: '/publish', headers: headers(encoding), payload: good });
    t.equal(res.statusCode, 415, encoding);
    t.match(res.json(), { code: 'UNSUPPORTED_MEDIA_TYPE', message: new RegExp(`Content-Encoding "${encoding}" is not supported`) });
  }
  t.equal((await agg.get('/stats')).received, 0, 'nothing counted');
});

t.test('a gzip bomb gets 413 without being inflated past BODY_LIMIT', async (t) => {
  const agg = await startAggregator(t, { bodyLimit: 1024 * 1024 });
  // 512 MiB of zeros inside a JSON string compresses to about half a megabyte.
  const bomb = gzipSync(Buffer.concat([Buffer.from('{"topic":"x","payload":"'), Buffer.alloc(512 * 1024 * 1024, 0x30), Buffer.from('"}')]));
  const rssBefore = process.memoryUsage().rss;
  const started = performance.now();
  const res = await agg.app.inject({ method: 'POST', url: '/publish', headers: headers('gzip'), payload: bomb });
  const ms = performance.now() - started;
  t.equal(res.statusCode, 413);
  t.match(res.json(), { code: 'BODY_TOO_LARGE', message: /inflates to more than BODY_LIMIT \(1048576 bytes\)/ });
  // Inflating all 512 MiB takes seconds and as much memory; stopping at the limit takes milliseconds.
  t.ok(ms < 2_000, `refused in ${ms.toFixed(0)} ms`);
  t.ok(process.memoryUsage().rss - rssBefore < 128 * 1024 * 1024, 'memory did not grow by the inflated size');
});

t.test('bytes after the gzip member are refused with 400, even zeros; a bodyless GET ignores Content-Encoding', async (t) => {
  const agg = await startAggregator(t);
  for (const [what, tail] of [['trailing zeros', Buffer.alloc(8)], ['one zero byte', Buffer.alloc(1)], ['trailing text', Buffer.from('junk')]] as const) {
    const res = await agg.app.inject({ method: 'POST', url: '/publish', headers: headers('gzip'), payload: Buffer.concat([gzipped(makeEvent()), tail]) });
    t.equal(res.statusCode, 400, what);
    t.match(res.json(), { code: 'INVALID_ENCODING' }, what);
  }
  const twoMembers = Buffer.concat([gzipSync('['), gzipSync(JSON.stringify(makeEvent())), gzipSync(']')]);
  const members = await agg.app.inject({ method: 'POST', url: '/publish', headers: headers('gzip'), payload: twoMembers });
  t.equal(members.statusCode, 200, 'several gzip members in a row are one body (RFC 1952)');
  t.equal((await agg.get('/stats')).received, 1, 'only the well-formed body was counted');
  for (const encoding of ['br', 'gzip', 'compress']) {
    const res = await agg.app.inject({ method: 'GET', url: '/stats', headers: { 'content-encoding': encoding } });
    t.equal(res.statusCode, 200, `GET with Content-Encoding: ${encoding}`);
  }
  t.equal((await agg.app.inject({ method: 'DELETE', url: '/consumers/none', headers: { 'content-encoding': 'br' } })).json().code,
    'UNKNOWN_CONSUMER', 'a bodyless DELETE too');
});
