import t from 'tap';
import { isRfc3339DateTime } from '../src/event-rules.js';
import { makeEvent } from './helpers/events.js';
import { startAggregator } from './helpers/in-process.js';

const { topic: _topic, ...withoutTopic } = makeEvent();

/** An object nested `levels` deep, with a bracket-laden string inside to show strings do not count. */
const nest = (levels: number): Record<string, unknown> => {
  let value: Record<string, unknown> = { text: '[[[{{{' };
  for (let i = 1; i < levels; i++) value = { a: value };
  return value;
};

/** Each bad event, the field the 400 must name, and words its reason must contain. */
const BAD_EVENTS: [string, unknown, string, RegExp][] = [
  ['missing topic', withoutTopic, 'topic', /required/],
  ['empty topic', makeEvent({ topic: '' }), 'topic', /length/],
  ['topic of 256 characters', makeEvent({ topic: 't'.repeat(256) }), 'topic', /length less or equal to 255/],
  ['topic with a newline', makeEvent({ topic: 'orders\nfake log line' }), 'topic', /control characters: U\+000A at index 6/],
  ['topic with a C1 control character', makeEvent({ topic: 'a\u0085b' }), 'topic', /control characters: U\+0085/],
  ['numeric topic', { ...makeEvent(), topic: 42 }, 'topic', /string/],
  ['topic with a lone surrogate', makeEvent({ topic: 'orders\udbff' }), 'topic', /well-formed Unicode: U\+DBFF at index 6 is an unpaired surrogate/],
  ['topic with a bidi override', makeEvent({ topic: 'sec.\u202egnp.exe' }), 'topic', /format characters .*: U\+202E at index 4/],
  ['topic with a zero-width space', makeEvent({ topic: 'orders\u200b' }), 'topic', /format characters .*: U\+200B/],
  ['topic with a word joiner', makeEvent({ topic: '\u2060orders' }), 'topic', /format characters .*: U\+2060 at index 0/],
  ['topic with an astral format character', makeEvent({ topic: 'a\u{E0001}' }), 'topic', /U\+E0001 at index 1/],
  ['event_id of a lone high surrogate', makeEvent({ event_id: '\ud800' }), 'event_id', /well-formed Unicode: U\+D800 at index 0/],
  ['event_id with a lone low surrogate', makeEvent({ event_id: 'a\udc00b' }), 'event_id', /U\+DC00 at index 1 is an unpaired surrogate/],
  ['event_id with half an emoji', makeEvent({ event_id: '\ud83d' }), 'event_id', /unpaired surrogate/],
  ['empty event_id', makeEvent({ event_id: '' }), 'event_id', /length/],
  ['event_id of 256 characters', makeEvent({ event_id: 'e'.repeat(256) }), 'event_id', /255/],
  ['numeric event_id', { ...makeEvent(), event_id: 7 }, 'event_id', /string/],
  ['empty source', makeEvent({ source: '' }), 'source', /length/],
  ['null source', { ...makeEvent(), source: null }, 'source', /string/],
  ['source with a lone surrogate', makeEvent({ source: '\udfff' }), 'source', /unpaired surrogate/],
  ['source with a zero-width joiner', makeEvent({ source: 'svc\u200d' }), 'source', /format characters .*: U\+200D at index 3/],
  ['source with a byte order mark', makeEvent({ source: '\ufeffsvc' }), 'source', /U\+FEFF/],
  ['source with a right-to-left mark', makeEvent({ source: 'svc\u200f' }), 'source', /U\+200F/],
  ['timestamp without a zone', makeEvent({ timestamp: '2026-11-24T10:00:00' }), 'timestamp', /RFC 3339/],
  ['February 30th', makeEvent({ timestamp: '2023-02-30T10:00:00Z' }), 'timestamp', /real calendar date/],
  ['February 29th of a common year', makeEvent({ timestamp: '2023-02-29T10:00:00Z' }), 'timestamp', /RFC 3339/],
  ['month 13', makeEvent({ timestamp: '2026-13-01T10:00:00Z' }), 'timestamp', /RFC 3339/],
  ['hour 24', makeEvent({ timestamp: '2026-11-24T24:00:00Z' }), 'timestamp', /RFC 3339/],
  ['a date without a time', makeEvent({ timestamp: '2026-11-24' }), 'timestamp', /RFC 3339/],
  ['epoch millis', { ...makeEvent(), timestamp: 1732442400000 }, 'timestamp', /string/],
  ['payload array', { ...makeEvent(), payload: [1, 2] }, 'payload', /object/],
  ['payload null', { ...makeEvent(), payload: null }, 'payload', /object/],
  ['payload string', { ...makeEvent(), payload: 'text' }, 'payload', /object/],
  ['payload too large', makeEvent({ payload: { blob: 'x'.repeat(2000) } }), 'payload', /at most 1024/],
  ['payload nested 101 levels deep', makeEvent({ payload: nest(101) }), 'payload', /nests deeper than 100 levels/],
  ['unknown extra field', { ...makeEvent(), priority: 'high' }, 'priority', /Unexpected property/],
  ['not an object', 'just a string', '(event)', /object/],
];

t.test('each invalid event is refused with a 400 naming its field', async (t) => {
  const agg = await startAggregator(t, { maxPayloadBytes: 1024 });
  for (const [name, bad, field, reason] of BAD_EVENTS) {
    const res = await agg.publish([makeEvent(), bad]);
    t.equal(res.status, 400, `${name}: 400`);
    const problem = res.body.errors.find((e: { field: string }) => e.field === field);
    t.ok(problem, `${name}: names ${field}`);
    t.equal(problem?.index, 1, `${name}: names index 1`);
    t.match(problem?.reason, reason, `${name}: says why`);
  }
  const stats = await agg.get('/stats');
  t.match(stats, { received: 0, unique_processed: 0, rejected: { invalid_requests: BAD_EVENTS.length } });
  t.same(await agg.get('/events'), [], 'nothing of any refused request was stored');
});

t.test('malformed bodies are refused with 4xx and nothing is stored', async (t) => {
  const agg = await startAggregator(t, { maxEventsPerRequest: 3 });
  const raw = async (payload: string, contentType = 'application/json') =>
    agg.app.inject({ method: 'POST', url: '/publish', payload, headers: { 'content-type': contentType } });

  const syntax = await raw('{"topic": ');
  t.equal(syntax.statusCode, 400, 'invalid JSON');
  t.match(syntax.json(), { message: /^invalid JSON body: .*JSON/ });
  const proto = await raw('{"__proto__": {"polluted": true}}');
  t.equal(proto.statusCode, 400, '__proto__ key');
  t.match(proto.json(), { message: /forbidden prototype property/ });
  t.equal((await raw('{"constructor": {"prototype": {"polluted": true}}}')).statusCode, 400, 'constructor.prototype');
  t.equal((await raw('')).statusCode, 400, 'empty body');
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted');
  t.equal((await raw('[]')).statusCode, 400, 'empty array');
  t.match((await raw('[]')).json(), { message: /no events/ });
  t.equal((await raw('null')).statusCode, 400, 'null body');
  t.equal((await raw('42')).statusCode, 400, 'number body');
  t.match((await agg.publish({ events: 'nope' })).body, { message: /"events" must be an array/ });
  t.match((await agg.publish({ events: [makeEvent()], extra: 1 })).body, { message: /no other fields/ });
  t.equal((await raw('topic=a', 'application/x-www-form-urlencoded')).statusCode, 415, 'not JSON');

  const tooMany = await agg.publish([makeEvent(), makeEvent(), makeEvent(), makeEvent()]);
  t.equal(tooMany.status, 413);
  t.match(tooMany.body, { message: /4 events; at most 3/ });

  const manyBad = await agg.publish({ events: [makeEvent({ topic: '' }), makeEvent(), { nope: true }] });
  t.same(manyBad.body.errors.map((e: { index: number }) => e.index).filter((v: number, i: number, a: number[]) => a.indexOf(v) === i), [0, 2]);
  t.match(manyBad.body, { message: /2 of 3 events are invalid/ });

  t.same(await agg.get('/events'), []);
});

t.test('ids that differ only in what UTF-8 cannot hold are refused, never merged', async (t) => {
  const agg = await startAggregator(t);
  for (const id of ['\ud800', '\udbff']) {
    const res = await agg.publish(makeEvent({ topic: 'merge', event_id: id }));
    t.equal(res.status, 400, `${JSON.stringify(id)}: 400`);
    t.match(res.body, { code: 'INVALID_EVENT', errors: [{ index: 0, field: 'event_id', reason: /unpaired surrogate/ }] });
  }
  t.same((await agg.publish(makeEvent({ topic: 'merge', event_id: '\ufffd' }))).body, { accepted: 1, unique: 1, duplicates: 0 });
  const batch = await agg.publish(['\ud800', '\udbff', '\ufffd'].map((id) => makeEvent({ topic: 'merge', event_id: id })));
  t.same(batch.body.errors.map((e: { index: number; field: string }) => [e.index, e.field]), [[0, 'event_id'], [1, 'event_id']]);
  t.same((await agg.get('/events')).map((e: { event_id: string }) => e.event_id), ['\ufffd']);
  t.match(await agg.get('/stats'), { received: 1, unique_processed: 1, duplicate_dropped: 0 });
});

/** A publish of raw bytes, as a client that does not go through JSON.stringify sends them. */
const rawPublish = (agg: Awaited<ReturnType<typeof startAggregator>>, payload: string | Buffer, contentType = 'application/json') =>
  agg.app.inject({ method: 'POST', url: '/publish', payload, headers: { 'content-type': contentType } });

t.test('a body that is not UTF-8 is refused with 400 INVALID_ENCODING; a BOM is stripped', async (t) => {
  const agg = await startAggregator(t);
  const text = JSON.stringify(makeEvent({ event_id: '@' }));
  const at = Buffer.byteLength(text.slice(0, text.indexOf('"@"') + 1));
  for (const byte of [0xff, 0xfe]) {
    const body = Buffer.from(text);
    body[at] = byte;
    const res = await rawPublish(agg, body);
    t.equal(res.statusCode, 400, `0x${byte.toString(16)}: 400`);
    t.match(res.json(), { code: 'INVALID_ENCODING', message: `the body is not valid UTF-8: byte 0x${byte.toString(16).toUpperCase()} at offset ${at} cannot start a character` });
  }
  const surrogate = Buffer.concat([Buffer.from(text.slice(0, text.indexOf('"@"') + 1)), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from(text.slice(text.indexOf('"@"') + 2))]);
  t.match((await rawPublish(agg, surrogate)).json(), { code: 'INVALID_ENCODING', message: /byte 0xA0 at offset \d+ does not continue/ }, 'an encoded surrogate');
  t.match(await agg.get('/stats'), { received: 0, unique_processed: 0 });
  t.same(await agg.get('/events'), [], 'nothing stored');

  const withBom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]);
  t.equal((await rawPublish(agg, withBom)).statusCode, 200, 'a leading byte order mark is stripped (RFC 8259 allows it)');
});

t.test('a charset other than UTF-8 is refused with 415', async (t) => {
  const agg = await startAggregator(t);
  const latin1 = Buffer.from(JSON.stringify(makeEvent({ source: 'café' })), 'latin1');
  for (const contentType of ['application/json; charset=iso-8859-1', 'application/json;charset="ISO-8859-1"', 'Application/JSON; Charset=latin1']) {
    const res = await rawPublish(agg, latin1, contentType);
    t.equal(res.statusCode, 415, contentType);
    t.match(res.json(), { code: 'UNSUPPORTED_MEDIA_TYPE', message: /^charset "(iso-8859-1|ISO-8859-1|latin1)" is not supported/ });
  }
  for (const contentType of ['application/json; charset=utf-8', 'application/json; charset="UTF-8"', 'application/json;charset=utf8']) {
    t.equal((await rawPublish(agg, JSON.stringify(makeEvent({ source: 'café' })), contentType)).statusCode, 200, contentType);
  }
  t.same([...new Set((await agg.get('/events')).map((e: { source: string }) => e.source))], ['café']);
});

/** An event whose payload is the JSON text given, as a client that writes JSON by hand sends it. */
const withPayload = (payload: string, indent?: number) =>
  JSON.stringify({ ...makeEvent(), payload: '@' }, null, indent).replace('"@"', payload);

t.test('a payload reads back as the value it was sent as, or is refused', async (t) => {
  const agg = await startAggregator(t);
  for (const [payload, reason] of [
    ['{"n":12345678901234567890}', /^payload\.n: 12345678901234567890 is not exactly a double: it would read back as 12345678901234567000$/],
    ['{"n":1e400}', /^payload\.n: 1e400 overflows a double$/],
    ['{"n":-0}', /^payload\.n: -0 is not exactly a double/],
    ['{"pi":3.14159265358979323846}', /^payload\.pi: 3.14159265358979323846 is not exactly a double: it would read back as 3.141592653589793$/],
    ['{"dup":1,"dup":2}', /^payload\.dup: the key "dup" appears more than once$/],
    ['{"a":[{"b":{"c":1,"c":1}}]}', /^payload\.a\[0\]\.b\.c: the key "c" appears more than once$/],
  ] as const) {
    const res = await rawPublish(agg, `[${JSON.stringify(makeEvent())},${withPayload(payload)}]`);
    t.equal(res.statusCode, 400, `${payload}: 400`);
    t.match(res.json(), { code: 'INVALID_EVENT', message: '1 of 2 events are invalid; nothing was stored', errors: [{ index: 1, field: 'payload', reason }] });
  }
  const twice = await rawPublish(agg, `{"events":[${withPayload('{}').replace('{"topic":', '{"topic":"x","topic":')}]}`);
  t.match(twice.json(), { code: 'INVALID_EVENT', errors: [{ index: 0, field: 'topic', reason: 'the key "topic" appears more than once' }] });
  const envelope = await rawPublish(agg, `{"events":[],"events":[${withPayload('{}')}]}`);
  t.match(envelope.json(), { code: 'INVALID_BODY', message: 'events: the key "events" appears more than once' });
  t.match(await agg.get('/stats'), { received: 0 });

  const exact = '{"one":1.0,"k":1E3,"tenth":0.1,"max":9007199254740992,"tiny":5e-324,"lone":"\\ud800","b":1,"2":"two","1":"one"}';
  const res = await rawPublish(agg, withPayload(exact, 2));
  t.equal(res.statusCode, 200, 'a pretty-printed body with exact numbers is accepted (the slow path)');
  const [stored] = await agg.get('/events');
  t.same(stored.payload, JSON.parse(exact), 'it reads back as the same value; integer-like keys first is no change');
  t.equal(stored.payload.lone, '\ud800', 'a lone surrogate inside a payload string survives (stored escaped)');
});

t.test('a body over the size limit is refused with 413', async (t) => {
  const agg = await startAggregator(t, { bodyLimit: 2048 });
  const res = await agg.publish(makeEvent({ payload: { blob: 'x'.repeat(4096) } }));
  t.equal(res.status, 413);
});

t.test('valid edge cases are accepted', async (t) => {
  const agg = await startAggregator(t);
  const good = [
    makeEvent({ topic: 't'.repeat(255), event_id: 'e'.repeat(255), source: 's'.repeat(255) }),
    makeEvent({ topic: 'zákazníci.čr 🚀', event_id: '💡' }),
    makeEvent({ timestamp: '2024-02-29T23:59:59.999999999+05:30' }),
    makeEvent({ timestamp: '2026-11-24t10:00:00z' }),
    makeEvent({ timestamp: '2026-11-24T10:00:00-12:00' }),
    makeEvent({ payload: {} }),
    makeEvent({ payload: { deep: { deeper: { deepest: [1, { x: null }] } } } }),
    makeEvent({ payload: nest(100) }),
  ];
  const res = await agg.publish(good);
  t.same(res.body, { accepted: good.length, unique: good.length, duplicates: 0 });
  const stored = await agg.get('/events');
  t.same(stored.map((e: { topic: string; payload: unknown }) => [e.topic, e.payload]), good.map((e) => [e.topic, e.payload]));
});

t.test('the timestamp check follows the calendar', async (t) => {
  for (const ok of ['2000-02-29T00:00:00Z', '2026-12-31T23:59:59Z', '2026-01-01T00:00:00.1+14:00']) {
    t.equal(isRfc3339DateTime(ok), true, ok);
  }
  for (const bad of ['1900-02-29T00:00:00Z', '2026-04-31T00:00:00Z', '2026-01-01T00:60:00Z', '2026-01-01T00:00:60Z',
    '2026-01-01T00:00:00+24:00', '2026-01-01 00:00:00Z', '2026-1-01T00:00:00Z', ' 2026-01-01T00:00:00Z']) {
    t.equal(isRfc3339DateTime(bad), false, bad);
  }
});
