import fc from 'fast-check';
import t from 'tap';
import { makeEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { startAggregator, type TestAggregator } from './helpers/in-process.js';
import { readAllEvents } from './helpers/server-process.js';
import { postgresStore, sqliteStore } from './helpers/stores.js';

/*
 * Thousands of random and mutated bodies against a real aggregator. The oracle: no 5xx, no crash, the
 * counters move only by what 2xx answers accepted, and everything stored satisfies the event rules,
 * checked here independently of the server's own validator.
 */

const RUNS = 1_500;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const FORMAT = /\p{Cf}/u;

/** The identity rules: 1-255 UTF-16 units of well-formed Unicode; names people read have no format characters. */
const isId = (v: unknown): v is string => typeof v === 'string' && v.length >= 1 && v.length <= 255 && v.isWellFormed();
const isName = (v: unknown): v is string => isId(v) && !FORMAT.test(v);
const isTopic = (v: unknown): v is string => isName(v) && !CONTROL.test(v);

function obeysTheSpec(e: Record<string, unknown>): boolean {
  const time = typeof e.timestamp === 'string' ? Date.parse(e.timestamp) : NaN;
  return isTopic(e.topic) && isId(e.event_id) && isName(e.source) &&
    !Number.isNaN(time) && /(Z|z|[+-]\d\d:\d\d)$/.test(e.timestamp as string) &&
    typeof e.payload === 'object' && e.payload !== null && !Array.isArray(e.payload);
}

const nasty = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme', maxLength: 300 }),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.constantFrom('', ' ', '\n', '\u0000', '\u2028', '\u202e', '\u200b', '\ud800', '\udbff', '\ufffd', '💥'.repeat(200), 'x'.repeat(256), 'x'.repeat(70_000),
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

/*
 * Identity and fidelity, on both stores: whatever strings the ids are made of, an acked event reads back
 * with its exact topic, event_id, source and payload, and two ids that differ as sent are never one key.
 */

/** Strings that would collide if anything between HTTP and the store were lossy. */
const identity = fc.oneof(
  { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }), weight: 4 },
  { arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }), weight: 1 },
  {
    arbitrary: fc.array(fc.constantFrom('a', '\ud800', '\udbff', '\udc00', '\ufffd', '\u0000', '\u202e', '\u200b', '\ufeff', '💥', '\ud83d', '\udca5', 'é', 'e\u0301'), { minLength: 1, maxLength: 4 }).map((parts) => parts.join('')),
    weight: 3,
  },
);

/** Payloads keep their value whatever their strings; __proto__ / constructor keys are refused by design. */
const payload = fc
  .dictionary(fc.string({ unit: 'binary', maxLength: 8 }), fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' }), { maxKeys: 6 })
  .filter((p) => !/"(__proto__|constructor)"/.test(JSON.stringify(p)));

/**
 * The events stored after `seq`, once there are any. On PostgreSQL a committed row becomes readable once
 * no older transaction is in flight anywhere on the server (the commit horizon), which can lag the ack.
 */
function eventsAfter(agg: TestAggregator, seq: number): Promise<any[]> {
  return eventually(() => agg.get(`/events?after=${seq}&limit=1000`), {
    what: `an event stored after seq ${seq}`, timeout: 5_000, interval: 10, until: (events: any[]) => events.length > 0,
  });
}

for (const [label, store] of [['SQLite', sqliteStore], ['PostgreSQL', postgresStore]] as const) {
  t.test(`identity and fidelity on ${label}`, async (t) => {
    const agg = await startAggregator(t, { ...(await store.fresh(t)), logLevel: 'silent' });
    let lastSeq = 0;
    let received = 0;
    let stored = 0;
    const keys = new Set<string>();
    const status: Record<string, number> = {};

    await t.test('arbitrary topics, ids and sources: acked exactly, or 400 with nothing stored', async (t) => {
      await fc.assert(
        fc.asyncProperty(identity, identity, identity, payload, fc.boolean(), async (topic, eventId, source, body, pretty) => {
          const event = makeEvent({ topic, event_id: eventId, source, payload: body });
          const text = JSON.stringify(event, null, pretty ? 2 : undefined);
          const res = await agg.app.inject({ method: 'POST', url: '/publish', payload: text, headers: { 'content-type': 'application/json' } });
          const valid = isTopic(topic) && isId(eventId) && isName(source);
          status[`${valid ? 'valid' : 'invalid'} ${res.statusCode}`] = (status[`${valid ? 'valid' : 'invalid'} ${res.statusCode}`] ?? 0) + 1;
          // A refusal or a duplicate that stored something would show up in the next read after lastSeq.
          if (!valid) return res.statusCode === 400;
          const key = JSON.stringify([topic, eventId]);
          const isNew = !keys.has(key);
          keys.add(key);
          received++;
          t.same(res.json(), { accepted: 1, unique: isNew ? 1 : 0, duplicates: isNew ? 0 : 1 }, `ack of ${key}`);
          if (!isNew) return true;
          const stored = await eventsAfter(agg, lastSeq);
          if (stored.length !== 1) return false;
          lastSeq = stored[0].seq;
          t.same([stored[0].topic, stored[0].event_id, stored[0].source], [topic, eventId, source], `exact identity of ${key}`);
          t.same(stored[0].payload, body, 'payload deep-equal');
          return true;
        }),
        { numRuns: 300, seed: 20261127 },
      );
      t.comment(JSON.stringify(status));
      t.ok(status['valid 200']! > 20 && status['invalid 400']! > 20, 'both kinds were tried');
    });

    await t.test('distinct ids in one topic are never merged', async (t) => {
      let n = 0;
      await fc.assert(
        fc.asyncProperty(fc.uniqueArray(identity, { minLength: 2, maxLength: 12 }), async (ids) => {
          const topic = `distinct-${n++}`;
          const res = await agg.publish(ids.map((id) => makeEvent({ topic, event_id: id })));
          const bad = ids.flatMap((id, index) => (isId(id) ? [] : [index]));
          if (bad.length > 0) {
            return res.status === 400 && t.same(res.body.errors.map((e: { index: number }) => e.index), bad);
          }
          received += ids.length;
          stored += ids.length;
          return t.same(res.body, { accepted: ids.length, unique: ids.length, duplicates: 0 }, `${ids.length} distinct ids`);
        }),
        { numRuns: 100, seed: 20261128 },
      );
    });

    await t.test('arbitrary bytes as a body: never a 5xx, nothing stored from a refusal', async (t) => {
      const answers: Record<number, number> = {};
      const valid = Buffer.from(JSON.stringify(makeEvent({ topic: 'bytes' })));
      const spliced = fc.tuple(fc.nat(valid.length), fc.uint8Array({ minLength: 1, maxLength: 4 })).map(([at, bytes]) =>
        Buffer.concat([valid.subarray(0, at), bytes, valid.subarray(at)]));
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)), spliced), async (bytes) => {
          const res = await agg.app.inject({ method: 'POST', url: '/publish', payload: bytes, headers: { 'content-type': 'application/json' } });
          answers[res.statusCode] = (answers[res.statusCode] ?? 0) + 1;
          if (res.statusCode === 200) {
            received += res.json().accepted;
            stored += res.json().unique;
          }
          return [200, 400].includes(res.statusCode);
        }),
        { numRuns: 200, seed: 20261129 },
      );
      t.same(Object.keys(answers).filter((status) => status !== '200' && status !== '400'), [], `only 200 and 400: ${JSON.stringify(answers)}`);
      t.equal(Object.values(answers).reduce((sum, n) => sum + n, 0), 200, 'over all 200 bodies');
    });

    await agg.settle();
    const stats = await agg.get('/stats');
    t.equal(stats.received, received, 'received counts exactly what was acked');
    t.equal(stats.unique_processed, keys.size + stored, 'unique counts exactly the distinct acked keys');
  });
}
