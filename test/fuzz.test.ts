import fc from 'fast-check';
import t from 'tap';
import { makeEvent } from './helpers/events.js';
import { startAggregator } from './helpers/in-process.js';
import { readAllEvents } from './helpers/server-process.js';

/*
 * Thousands of random and mutated bodies against a real aggregator. The oracle: no 5xx, no crash, the
 * counters move only by what 2xx answers accepted, and everything stored satisfies the event rules,
 * checked here independently of the server's own validator.
 */

const RUNS = 1_500;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function obeysTheSpec(e: Record<string, unknown>): boolean {
  const name = (v: unknown) => typeof v === 'string' && v.length >= 1 && v.length <= 255;
  const time = typeof e.timestamp === 'string' ? Date.parse(e.timestamp) : NaN;
  return name(e.topic) && !CONTROL.test(e.topic as string) && name(e.event_id) && name(e.source) &&
    !Number.isNaN(time) && /(Z|z|[+-]\d\d:\d\d)$/.test(e.timestamp as string) &&
    typeof e.payload === 'object' && e.payload !== null && !Array.isArray(e.payload);
}

const nasty = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme', maxLength: 300 }),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.constantFrom('', ' ', '\n', '\u0000', '\u2028', '💥'.repeat(200), 'x'.repeat(256), 'x'.repeat(70_000),
    '2023-02-30T10:00:00Z', '2024-02-29T10:00:00Z', '2026-11-24T10:00:00', '2026-11-24T25:00:00Z', '0000-00-00T00:00:00Z',
    "'; DROP TABLE events; --", '__proto__', 'constructor'),
  fc.integer(), fc.double(), fc.boolean(), fc.constant(null),
  fc.array(fc.jsonValue(), { maxLength: 5 }), fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 5 }),
);

const fields = ['topic', 'event_id', 'timestamp', 'source', 'payload'] as const;

/** A valid event with one to three fields replaced, removed, or extra keys added. */
const mutatedEvent = fc
  .tuple(
    fc.array(fc.tuple(fc.constantFrom(...fields), fc.option(nasty, { nil: undefined })), { minLength: 1, maxLength: 3 }),
    fc.option(fc.tuple(fc.constantFrom('extra', '__proto__', 'constructor', 'prototype', 'events'), nasty), { nil: undefined }),
  )
  .map(([changes, extra]) => {
    const event: Record<string, unknown> = { ...makeEvent() };
    for (const [field, value] of changes) {
      if (value === undefined) delete event[field];
      else event[field] = value;
    }
    let text = JSON.stringify(event);
    if (extra) text = `${text.slice(0, -1)},${JSON.stringify(extra[0])}:${JSON.stringify(extra[1]) ?? 'null'}}`;
    return text;
  });

const deepPayload = fc.integer({ min: 1, max: 20_000 }).map((depth) => {
  const inner = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
  return JSON.stringify({ ...makeEvent(), payload: {} }).replace('"payload":{}', `"payload":${inner}`);
});

const body = fc.oneof(
  { arbitrary: mutatedEvent, weight: 5 },
  { arbitrary: fc.array(mutatedEvent, { minLength: 1, maxLength: 5 }).map((items) => `[${items.join(',')}]`), weight: 2 },
  { arbitrary: fc.array(mutatedEvent, { maxLength: 3 }).map((items) => `{"events":[${items.join(',')}]}`), weight: 1 },
  { arbitrary: fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null'), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary' }), weight: 1 },
  { arbitrary: mutatedEvent.chain((text) => fc.nat(text.length).map((cut) => text.slice(0, cut))), weight: 1 },
  { arbitrary: deepPayload, weight: 1 },
);

t.test(`${RUNS} hostile bodies: never a 5xx, nothing stored from a refusal, nothing invalid stored`, async (t) => {
  const agg = await startAggregator(t, { maxPayloadBytes: 64 * 1024 });
  let accepted = 0;
  const statuses: Record<number, number> = {};
  await fc.assert(
    fc.asyncProperty(body, async (payload) => {
      const res = await agg.app.inject({ method: 'POST', url: '/publish', payload, headers: { 'content-type': 'application/json' } });
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      if (res.statusCode === 200) accepted += res.json().accepted;
      return [200, 400, 413].includes(res.statusCode);
    }),
    { numRuns: RUNS, seed: 20261125 },
  );
  t.comment(`answers: ${JSON.stringify(statuses)}`);
  t.ok(statuses[200]! > 0 && statuses[400]! > 0, 'both acceptances and refusals happened');

  await agg.settle();
  const stats = await agg.get('/stats');
  t.equal(stats.received, accepted, 'received counts exactly what 200s accepted');
  const stored = await readAllEvents((path) => agg.get(path));
  t.equal(stats.unique_processed, stored.length);
  t.ok(stored.every(obeysTheSpec), 'every stored event obeys the event rules');
  t.same(Object.keys(Object.prototype), [], 'Object.prototype was not polluted');
  t.equal(({} as Record<string, unknown>).a, undefined);
});

t.test('topics and ids are data: SQL text, quotes and newlines are stored verbatim', async (t) => {
  const agg = await startAggregator(t);
  const tricky = makeEvent({ topic: "t'; DROP TABLE events; --", event_id: 'id\n{"level":60,"msg":"forged"}', source: '"quoted"\\' });
  t.same((await agg.publish([tricky, tricky])).body, { accepted: 2, unique: 1, duplicates: 1 });
  const [stored] = await agg.get(`/events?topic=${encodeURIComponent(tricky.topic)}`);
  t.match(stored, { topic: tricky.topic, event_id: tricky.event_id, source: tricky.source });
  t.equal((await agg.get('/stats')).unique_processed, 1, 'the events table is still there');
});
