import { randomBytes } from 'node:crypto';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import t, { type Test } from 'tap';
import type { Config } from '../../src/config.js';
import { StoredEventSchema } from '../../src/http/schemas/events.js';
import { eventDoc } from '../../src/store/event-doc.js';
import { makeEvent } from '../helpers/events.js';
import { startAggregator, type TestAggregator } from '../helpers/in-process.js';
import type { TestStore } from '../helpers/stores.js';

type Start = (t: Test, overrides?: Partial<Config>) => Promise<TestAggregator>;

/** An event whose payload is about `kib` KiB of JSON. */
export const bigEvent = (kib: number, topic = 'big') =>
  makeEvent({ topic, payload: { blob: randomBytes(kib * 512).toString('hex') } });

export async function publishAll(t: Test, agg: TestAggregator, events: ReturnType<typeof makeEvent>[], perRequest = 50): Promise<void> {
  for (let i = 0; i < events.length; i += perRequest) {
    t.equal((await agg.publish(events.slice(i, i + perRequest))).status, 200, `stored events ${i}-${i + perRequest - 1}`);
  }
}

/** Every page from after=0 on, raw and parsed, until the empty page. */
async function allPages(agg: TestAggregator, query: string): Promise<{ bytes: number; items: any[] }[]> {
  const pages = [];
  for (let after = 0; ; ) {
    const res = await agg.app.inject({ method: 'GET', url: `/events?after=${after}&${query}` });
    if (res.statusCode !== 200) throw new Error(`/events answered ${res.statusCode}: ${res.body}`);
    const items = res.json<any[]>();
    if (items.length === 0) return pages;
    pages.push({ bytes: res.rawPayload.length, items });
    after = items.at(-1).seq;
  }
}

/** /events and /topics as every store must serve them: byte-capped pages, validated queries, topics by name. */
export function readersSuite(store: TestStore): void {
  const start: Start = async (t, overrides = {}) => startAggregator(t, { ...(await store.fresh(t)), ...overrides });

  t.test('what /events serves is exactly the documented response schema (StoredEventSchema)', async (t) => {
    const agg = await start(t);
    const sent = [
      makeEvent(), makeEvent({ topic: 'naïve.топик', event_id: 'id with "quotes" \\ and \u0000 NUL', source: '💥 svc' }),
      makeEvent({ payload: { nested: { list: [1, 2.5, -3e-7, true, null, 'x'] }, empty: {}, '10': 'integer-like key' } }),
      makeEvent({ timestamp: '2026-01-01T00:00:00.123456789+05:30', payload: {} }),
    ];
    t.equal((await agg.publish(sent)).status, 200);
    const check = TypeCompiler.Compile(StoredEventSchema);
    for (const url of ['/events', `/events?topic=${encodeURIComponent('naïve.топик')}`]) {
      const items = await agg.get(url);
      t.ok(items.length > 0, `${url} has events`);
      for (const item of items) t.same([...check.Errors(item)].map((e) => `${e.path}: ${e.message}`), [], `${url} seq ${item.seq}`);
    }
    t.same((await agg.get('/events')).map((e: any) => e.payload), sent.map((e) => e.payload), 'payloads read back as sent');
    // Byte for byte the stored doc's shape (eventDoc) with the seq first, whichever store built it (SQLite does in SQL).
    const served = await agg.app.inject({ method: 'GET', url: '/events' });
    const expected = served.json<any[]>().map((item, i) => `{"seq":${item.seq},${eventDoc({
      topic: item.topic, eventId: item.event_id, timestamp: item.timestamp, source: item.source, payload: JSON.stringify(sent[i]!.payload), receivedAt: item.received_at,
    }).slice(1)}`);
    t.equal(served.body, `[${expected.join(',')}]`, 'each item is eventDoc() with its seq first');
  });

  t.test('limit=10000 of 60 KiB events: 200, pages within MAX_PAGE_BYTES, paging on reaches every event once', async (t) => {
    const agg = await start(t);
    const sent = Array.from({ length: 150 }, () => bigEvent(60));
    await publishAll(t, agg, sent);

    const pages = await allPages(agg, 'limit=10000');
    t.ok(pages.length >= 3, `${pages.length} pages for ~9 MB of events`);
    for (const page of pages) t.ok(page.bytes <= agg.config.maxPageBytes, `a page of ${page.bytes} bytes is within the cap`);
    t.same(pages.flatMap((p) => p.items.map((e) => e.event_id)), sent.map((e) => e.event_id), 'every event once, in order');
    t.same(pages[0]!.items[0].payload, sent[0]!.payload);
  });

  t.test('a page stops before the event that would pass the cap, and always holds one', async (t) => {
    const agg = await start(t, { maxPageBytes: 1024 });
    const sent = [...Array.from({ length: 12 }, (_, i) => makeEvent({ event_id: `small-${i}` })), bigEvent(2), bigEvent(2)];
    await publishAll(t, agg, sent);

    const pages = await allPages(agg, 'limit=10000');
    t.same(pages.flatMap((p) => p.items.map((e) => e.event_id)), sent.map((e) => e.event_id), 'every event once, in order');
    t.same(pages.slice(-2).map((p) => p.items.length), [1, 1], 'an event larger than the cap is a page of its own');
    for (const [i, page] of pages.slice(0, -2).entries()) {
      const next = Buffer.byteLength(JSON.stringify(pages[i + 1]!.items[0]));
      t.ok(page.bytes <= 1024 && page.bytes + next + 1 > 1024, `page ${i} (${page.bytes} bytes) is full: the next item has ${next}`);
    }
  });

  t.test('query values the store would choke on are refused with 400 INVALID_QUERY before any SQL', async (t) => {
    const agg = await start(t);
    await agg.publish(makeEvent());
    const bad = ['/events?after=99999999999999999999', '/events?after=1e21', `/events?after=${Number.MAX_SAFE_INTEGER + 1}`,
      '/events?topic=%00', '/events?topic=a%0Ab', `/events?topic=${'x'.repeat(256)}`, '/topics?after=%00', '/topics?limit=10001'];
    for (const url of bad) {
      const res = await agg.app.inject({ method: 'GET', url });
      t.equal(res.statusCode, 400, `${url.slice(0, 60)} is refused`);
      t.equal(res.json().code, 'INVALID_QUERY');
    }
    t.same(await agg.get(`/events?after=${Number.MAX_SAFE_INTEGER}`), [], 'the largest after is a valid, empty page');
  });

  t.test('/topics lists every topic with its stored events, paged by name', async (t) => {
    const agg = await start(t);
    const expected = Array.from({ length: 23 }, (_, i) => ({ topic: `topic${String(i).padStart(2, '0')}`, events: (i % 4) + 1 }));
    const sent = expected.flatMap(({ topic, events }) => Array.from({ length: events }, () => makeEvent({ topic })));
    await publishAll(t, agg, sent);
    await agg.publish(sent[0]!); // a duplicate counts nothing

    const listed = [];
    let pages = 0;
    for (let after = ''; ; pages++) {
      const page = await agg.get(`/topics?after=${encodeURIComponent(after)}&limit=5`);
      if (page.length === 0) break;
      t.ok(page.length <= 5);
      listed.push(...page);
      after = page.at(-1).topic;
    }
    t.equal(pages, 5);
    t.same(listed, expected, 'every topic once, by name, with its count');
    t.same(await agg.get('/topics'), expected, 'the default limit covers them all');
  });

  t.test('since= and until= read a range of received_at, paged to its end, which X-Range-End tells; bad values are 400', async (t) => {
    const agg = await start(t);
    // Three requests, each stamped with its own received_at.
    const stamps: string[] = [];
    for (let i = 0; i < 3; i++) {
      await publishAll(t, agg, Array.from({ length: 5 }, (_, k) => makeEvent({ topic: k % 2 ? 'x' : 'y' })));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const all = (await allPages(agg, 'limit=100')).flatMap((page) => page.items);
    for (const e of all) if (!stamps.includes(e.received_at)) stamps.push(e.received_at);
    t.equal(stamps.length, 3, 'three received_at');
    const [a, b, c] = stamps.map((stamp) => all.filter((e) => e.received_at === stamp));
    const range = (query: string) => agg.app.inject({ method: 'GET', url: `/events?${query}` });
    const at = encodeURIComponent(b![0].received_at);

    const pages: any[][] = [];
    let res = await range(`since=${at}&until=${at}&limit=2`);
    for (;;) {
      t.equal(res.statusCode, 200);
      t.equal(res.headers['x-range-end'], String(c![0].seq - 1), 'every page tells where the range ends');
      const items = res.json<any[]>();
      if (items.length === 0) break;
      pages.push(items);
      res = await range(`after=${items.at(-1).seq}&until=${at}&limit=2`);
    }
    t.same(pages.map((page) => page.length), [2, 2, 1], 'paged by limit');
    t.same(pages.flat(), b, 'since and until the same instant: exactly the events received then');
    t.same((await range(`since=${at}&until=${at}&topic=x`)).json(), b!.filter((e) => e.topic === 'x'), 'a topic narrows the range');
    t.same((await range(`since=${at}`)).json(), [...b!, ...c!], 'since= alone: from the first event received at or after it');
    t.same((await range(`after=0&since=${at}`)).json(), all, 'after= wins over since=');
    const zoned = encodeURIComponent(new Date(Date.parse(b![0].received_at) - 1).toISOString().replace('Z', '+00:00'));
    t.same((await range(`until=${zoned}`)).json(), a, 'until= with a zone: up to the first event received after it');

    // The last stamp: no event received after it is stored yet, so the range may still grow and no page says where it ends.
    const last = encodeURIComponent(c![0].received_at);
    const open = await range(`until=${last}`);
    t.same(open.json(), all);
    t.notOk(open.headers['x-range-end'], 'no end until an event received after until is stored');
    await new Promise((resolve) => setTimeout(resolve, 5));
    await publishAll(t, agg, [makeEvent({ topic: 'x' })]);
    const [d] = (await allPages(agg, 'limit=100')).flatMap((page) => page.items).slice(-1);
    const closed = await range(`until=${last}`);
    t.same(closed.json(), all, 'the later event is not in the range');
    t.equal(closed.headers['x-range-end'], String(d.seq - 1));

    const refused: [string, string][] = [['until=yesterday', 'until'], ['until=2026-02-30T00:00:00Z', 'until'], ['since=2026-11-24T10:00:00', 'since'],
      ['since=2026-11-24T10:00:01Z&until=2026-11-24T10:00:00Z', 'since'], ['since=2026-11-24T12:00:00%2B02:00&until=2026-11-24T09:59:59Z', 'since']];
    for (const [query, parameter] of refused) {
      const bad = await range(query);
      t.equal(bad.statusCode, 400, query);
      t.equal(bad.json().code, 'INVALID_QUERY');
      t.match(bad.json().message, parameter, `${query}: ${bad.json().message}`);
    }
  });
}
