import t from 'tap';
import { isRfc3339DateTime } from '../src/http/timestamp.js';
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
  ['topic with a newline', makeEvent({ topic: 'orders\nfake log line' }), 'topic', /control characters/],
  ['topic with a C1 control character', makeEvent({ topic: 'a\u0085b' }), 'topic', /control characters/],
  ['numeric topic', { ...makeEvent(), topic: 42 }, 'topic', /string/],
  ['empty event_id', makeEvent({ event_id: '' }), 'event_id', /length/],
  ['event_id of 256 characters', makeEvent({ event_id: 'e'.repeat(256) }), 'event_id', /255/],
  ['numeric event_id', { ...makeEvent(), event_id: 7 }, 'event_id', /string/],
  ['empty source', makeEvent({ source: '' }), 'source', /length/],
  ['null source', { ...makeEvent(), source: null }, 'source', /string/],
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
    t.equal(res.statusCode, 400, `${name}: 400`);
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
  t.equal(tooMany.statusCode, 413);
  t.match(tooMany.body, { message: /4 events; at most 3/ });

  const manyBad = await agg.publish({ events: [makeEvent({ topic: '' }), makeEvent(), { nope: true }] });
  t.same(manyBad.body.errors.map((e: { index: number }) => e.index).filter((v: number, i: number, a: number[]) => a.indexOf(v) === i), [0, 2]);
  t.match(manyBad.body, { message: /2 of 3 events are invalid/ });

  t.same(await agg.get('/events'), []);
});

t.test('a body over the size limit is refused with 413', async (t) => {
  const agg = await startAggregator(t, { bodyLimit: 2048 });
  const res = await agg.publish(makeEvent({ payload: { blob: 'x'.repeat(4096) } }));
  t.equal(res.statusCode, 413);
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
