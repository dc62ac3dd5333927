import { gzipSync } from 'node:zlib';
import t from 'tap';
import { makeEvent } from './helpers/events.js';
import { startAggregator, type TestAggregator } from './helpers/in-process.js';

const NDJSON = { 'content-type': 'application/x-ndjson' };
const lines = (events: unknown[]) => events.map((e) => JSON.stringify(e)).join('\n');
const post = (agg: TestAggregator, payload: string | Buffer, headers: Record<string, string> = NDJSON) =>
  agg.app.inject({ method: 'POST', url: '/publish', headers, payload });

t.test('NDJSON: one event per line, stored in line order; blank lines and CRLF are fine', async (t) => {
  const agg = await startAggregator(t);
  const events = Array.from({ length: 20 }, () => makeEvent());
  const body = `\n${lines(events.slice(0, 10))}\r\n\n   \n${lines(events.slice(10))}\n\n`;
  const res = await post(agg, body);
  t.equal(res.statusCode, 200, res.body);
  t.same(res.json(), { accepted: 20, unique: 20, duplicates: 0 });
  const stored = await agg.get('/events');
  t.same(stored.map((e: { event_id: string }) => e.event_id), events.map((e) => e.event_id));
  t.same(stored[0].payload, events[0]!.payload);
  const again = await post(agg, lines(events.slice(0, 3)), { 'content-type': 'application/x-ndjson; charset=utf-8' });
  t.same(again.json(), { accepted: 3, unique: 0, duplicates: 3 }, 'duplicates are dropped as for JSON');
});

t.test('NDJSON is all-or-nothing; a bad line is named by its 1-based line number', async (t) => {
  const agg = await startAggregator(t);
  const good = makeEvent();
  const notJson = await post(agg, `${JSON.stringify(good)}\n\n{"topic": nope}\n${JSON.stringify(makeEvent())}`);
  t.equal(notJson.statusCode, 400);
  t.match(notJson.json(), { code: 'INVALID_JSON', errors: [{ line: 3, field: '(line)', reason: /invalid JSON/ }] });

  const invalid = await post(agg, [JSON.stringify(good), '', JSON.stringify(makeEvent({ timestamp: 'yesterday' })), ''].join('\n'));
  t.equal(invalid.statusCode, 400);
  t.match(invalid.json(), { code: 'INVALID_EVENT', errors: [{ index: 1, line: 3, field: 'timestamp' }] });

  const inexact = await post(agg, `${JSON.stringify(good)}\n{"topic":"a","event_id":"b","timestamp":"2026-01-01T00:00:00Z","source":"s","payload":{"n":12345678901234567890}}`);
  t.match(inexact.json(), { code: 'INVALID_EVENT', errors: [{ index: 1, line: 2, field: 'payload', reason: /n: .*not exactly a double/ }] });

  const manyInexact = Array.from({ length: 150 }, (_, i) =>
    `{"topic":"a","event_id":"e${i}","timestamp":"2026-01-01T00:00:00Z","source":"s","payload":{"n":12345678901234567890}}`);
  const capped = (await post(agg, manyInexact.join('\n'))).json();
  t.equal(capped.errors.length, 100, 'at most 100 problems are listed');
  t.match(capped.errors[99], { index: 99, line: 100 });

  const proto = await post(agg, `${JSON.stringify(good)}\n{"__proto__":{"x":1}}`);
  t.match(proto.json(), { code: 'INVALID_JSON', errors: [{ line: 2 }] }, 'the same secure parsing as JSON bodies');
  t.equal((await post(agg, '\n \n')).json().code, 'INVALID_BODY', 'only blank lines: no events');
  t.same(await agg.get('/events'), [], 'nothing was stored');
});

t.test('NDJSON bodies: gzip, BODY_LIMIT, MAX_EVENTS_PER_REQUEST, UTF-8', async (t) => {
  const agg = await startAggregator(t, { bodyLimit: 64 * 1024, maxEventsPerRequest: 50 });
  const events = Array.from({ length: 50 }, () => makeEvent());
  const zipped = await post(agg, gzipSync(lines(events)), { ...NDJSON, 'content-encoding': 'gzip' });
  t.same(zipped.json(), { accepted: 50, unique: 50, duplicates: 0 }, 'gzip');

  const tooMany = await post(agg, lines([...events, makeEvent()]));
  t.equal(tooMany.statusCode, 413);
  t.match(tooMany.json(), { code: 'TOO_MANY_EVENTS' });

  const big = lines(Array.from({ length: 40 }, () => makeEvent({ payload: { pad: 'x'.repeat(2000) } })));
  const tooLarge = await post(agg, big);
  t.equal(tooLarge.statusCode, 413);
  t.match(tooLarge.json(), { code: 'BODY_TOO_LARGE' });
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20));
  const bombed = await post(agg, bomb, { ...NDJSON, 'content-encoding': 'gzip' });
  t.equal(bombed.statusCode, 413, 'a gzip bomb of blank lines stops at BODY_LIMIT');

  // The euro sign's three bytes, cut between two chunks the decoder sees, still read as one character.
  const euro = makeEvent({ payload: { price: '5 €' } });
  const bytes = Buffer.from(JSON.stringify(euro));
  const badUtf8 = await post(agg, Buffer.concat([bytes.subarray(0, 20), Buffer.from([0xff]), bytes.subarray(20)]));
  t.equal(badUtf8.statusCode, 400);
  t.match(badUtf8.json(), { code: 'INVALID_ENCODING' });
  const ok = await post(agg, bytes);
  t.equal(ok.statusCode, 200);
  t.same((await agg.get(`/events?topic=${euro.topic}`)).find((e: { event_id: string }) => e.event_id === euro.event_id).payload, euro.payload);
});

t.test('NDJSON is accepted on /publish only', async (t) => {
  const agg = await startAggregator(t);
  const res = await agg.app.inject({ method: 'POST', url: '/consumers', headers: NDJSON, payload: '{"name":"c"}' });
  t.equal(res.statusCode, 415);
  t.match(res.json(), { code: 'UNSUPPORTED_MEDIA_TYPE' });
});
