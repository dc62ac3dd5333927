import t, { type Test } from 'tap';
import { loadConfig, type Config } from '../../src/config.js';
import { keyOf, makeEvent, type TestEvent } from '../helpers/events.js';
import { eventually } from '../helpers/eventually.js';
import { startAggregator, type TestAggregator } from '../helpers/in-process.js';
import { eventPager } from '../helpers/pager.js';
import { readAllEvents } from '../helpers/server-process.js';
import type { TestStore } from '../helpers/stores.js';

/**
 * The retention settings as the server parses them from its environment. DEDUP_HOT_KEYS=16 makes an
 * SQLite store seal its in-memory key index after a few events, so dedup across sealed keys is exercised.
 */
export function retentionSettings(env: Record<string, string>): Pick<Config, 'retention' | 'dedupWindowMs' | 'dedupHotKeys'> {
  const { retention, dedupWindowMs, dedupHotKeys } = loadConfig([], { DEDUP_HOT_KEYS: '16', ...env });
  return { retention, dedupWindowMs, dedupHotKeys };
}

/** Ages are seconds and purges run in the background: waits for them are bounded, never sleeps guessed. */
const PURGE_TIMEOUT_MS = 10_000;
/**
 * On PostgreSQL a committed row is readable once every older transaction of the server has ended (the
 * commit horizon): a read right after a publish waits for it, as a busy shared test server may lag.
 */
export const READ_TIMEOUT_MS = 5_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ids = (events: { event_id: string }[]) => events.map((e) => e.event_id);

/** Every stored event, read once all of `expected` (acknowledged, never purged) are readable. */
export function everythingReadable(client: { get(path: string): Promise<any> }, expected: readonly TestEvent[]): Promise<any[]> {
  return eventually(() => readAllEvents((path) => client.get(path)), {
    what: `all ${expected.length} acknowledged events of topics without a rule to be readable`, timeout: READ_TIMEOUT_MS, interval: 100,
    until: (events) => {
      const keys = new Set(events.map(keyOf));
      return expected.every((e) => keys.has(keyOf(e)));
    },
  });
}

/**
 * Retention as every store must do it, through HTTP only: age and count limits per topic pattern,
 * dedup that outlives purged events, DEDUP_WINDOW forgetting keys, counters that stay consistent, and
 * `after=` paging that neither repeats nor skips a retained event while a purge runs. Run once per store
 * kind by retention-*.test.ts.
 */
export function retentionSuite(store: TestStore): void {
  const start = async (t: Test, env: Record<string, string>): Promise<TestAggregator> =>
    startAggregator(t, { ...(await store.fresh(t)), ...retentionSettings(env) });
  const topicEvents = (agg: TestAggregator, topic: string): Promise<any[]> => agg.get(`/events?topic=${topic}&limit=10000`);
  /**
   * The topic's retained events, read once its newest event `last` is readable. On PostgreSQL an empty or
   * partial page may only mean that the commit horizon lags (another transaction of the shared test server
   * is still open), not that anything was purged.
   */
  const readableThrough = (agg: TestAggregator, topic: string, last: string, until: (events: any[]) => boolean = () => true) =>
    eventually(() => topicEvents(agg, topic), {
      what: `${topic} readable through ${last}`, timeout: PURGE_TIMEOUT_MS, interval: 50,
      until: (events) => events.at(-1)?.event_id === last && until(events),
    });

  t.test('age: events older than their limit leave /events, younger ones and other topics stay', async (t) => {
    const agg = await start(t, { RETENTION: 'short.*=2s,counted.*=5' });
    const old = Array.from({ length: 5 }, (_, i) => makeEvent({ topic: 'short.a', event_id: `old-${i}` }));
    const kept = Array.from({ length: 4 }, (_, i) => makeEvent({ topic: 'keep.x', event_id: `kept-${i}` }));
    t.equal((await agg.publish([...old, ...kept])).status, 200);
    await sleep(1_000);
    const young = Array.from({ length: 3 }, (_, i) => makeEvent({ topic: 'short.a', event_id: `young-${i}` }));
    t.equal((await agg.publish(young)).status, 200);
    const youngAt = Date.now();

    const left = await eventually(() => topicEvents(agg, 'short.a'), {
      what: 'the old short.a events to be purged', timeout: PURGE_TIMEOUT_MS, interval: 50,
      until: (events) => !events.some((e) => e.event_id.startsWith('old-')),
    });
    // Young events are purged too once 2 s old: only while they are younger must all of them be there.
    if (Date.now() - youngAt < 1_800) t.same(ids(left), ids(young), 'the younger short.a events are all still there, in order');
    else t.ok(ids(left).every((id) => id.startsWith('young-')), 'whatever is left of short.a is young');
    t.same(ids(await topicEvents(agg, 'keep.x')), ids(kept), 'a topic no rule matches keeps everything');

    const rest = await eventually(() => agg.get('/events'), {
      what: 'the young short.a events to be purged in their turn', timeout: PURGE_TIMEOUT_MS, interval: 100,
      // keep.x readable: the page is not empty only because the commit horizon lags.
      until: (events: any[]) => !events.some((e) => e.topic === 'short.a') && events.some((e) => e.event_id === 'kept-3'),
    });
    t.same(ids(rest), ids(kept), '/events without a topic: only keep.x is left');
  });

  t.test('count: a topic keeps exactly its newest N events', async (t) => {
    const agg = await start(t, { RETENTION: 'short.*=2s,counted.*=5' });
    const many = Array.from({ length: 12 }, (_, i) => makeEvent({ topic: 'counted.a', event_id: `a-${String(i).padStart(2, '0')}` }));
    const few = Array.from({ length: 3 }, (_, i) => makeEvent({ topic: 'counted.b', event_id: `b-${i}` }));
    for (let i = 0; i < many.length; i += 4) t.equal((await agg.publish(many.slice(i, i + 4))).status, 200);
    t.equal((await agg.publish(few)).status, 200);

    const left = await readableThrough(agg, 'counted.a', 'a-11', (events) => events.length <= 5);
    t.same(ids(left), ids(many.slice(-5)), 'the newest 5, in order');
    t.same(ids(await readableThrough(agg, 'counted.b', 'b-2')), ids(few), 'a topic under its limit keeps all');
    await sleep(500);
    t.equal((await readableThrough(agg, 'counted.a', 'a-11')).length, 5, 'and no fewer than 5 later on');
  });

  t.test('dedup outlives retention; counters count purged events and stay consistent', async (t) => {
    const agg = await start(t, { RETENTION: 'short.*=2s,counted.*=5' });
    const events = Array.from({ length: 8 }, (_, i) => makeEvent({ topic: 'counted.c', event_id: `c-${i}` }));
    t.same((await agg.publish([...events, events[0]!])).body, { accepted: 9, unique: 8, duplicates: 1 });
    await eventually(() => topicEvents(agg, 'counted.c'), {
      what: 'counted.c to be cut to 5', timeout: PURGE_TIMEOUT_MS, interval: 50, until: (stored) => stored.length === 5,
    });

    const purged = events.slice(0, 3);
    t.same((await agg.publish(purged[0])).body, { accepted: 1, unique: 0, duplicates: 1 }, 'a purged key is still a duplicate');
    t.same((await agg.publish(purged)).body, { accepted: 3, unique: 0, duplicates: 3 }, 'every purged key is');
    t.same((await agg.publish(events)).body, { accepted: 8, unique: 0, duplicates: 8 }, 'retained and purged alike');
    t.same(ids(await topicEvents(agg, 'counted.c')), ids(events.slice(-5)), 'nothing purged came back');

    const stats = await agg.get('/stats');
    t.match(stats, { received: 21, unique_processed: 8, duplicate_dropped: 13 }, 'unique_processed counts the purged events too');
    t.equal(stats.received, stats.unique_processed + stats.duplicate_dropped, 'received = unique_processed + duplicate_dropped');
  });

  t.test('DEDUP_WINDOW: a key re-sent within the window is a duplicate, after it is stored again, once', async (t) => {
    const agg = await start(t, { RETENTION: 'window.*=1h', DEDUP_WINDOW: '2s' });
    const event = makeEvent({ topic: 'window.a', event_id: 'k' });
    t.same((await agg.publish(event)).body, { accepted: 1, unique: 1, duplicates: 0 });
    // Before reading anything: on PostgreSQL a lagging commit horizon could delay the read past the window.
    await sleep(300);
    t.same((await agg.publish([event, { ...event, payload: { again: true } }])).body, { accepted: 2, unique: 0, duplicates: 2 },
      'within the window: duplicates');
    const [first] = await eventually(() => topicEvents(agg, 'window.a'), {
      what: 'the event to be readable', timeout: READ_TIMEOUT_MS, until: (events) => events.length === 1,
    });

    await sleep(Math.max(0, Date.parse(first.received_at) + 2_300 - Date.now()));
    const resent = { ...event, payload: { resent: true } };
    t.same((await agg.publish([resent, event])).body, { accepted: 2, unique: 1, duplicates: 1 },
      'after the window: stored again (once, the batch\'s later copy a duplicate of it)');
    const copies = (await eventually(() => topicEvents(agg, 'window.a'), {
      what: 'the new copy to be readable', timeout: READ_TIMEOUT_MS, until: (events) => events.some((e) => e.payload.resent),
    })).filter((e) => e.event_id === 'k');
    t.equal(copies.length, 1, 'exactly one copy of the key is visible');
    t.same(copies[0].payload, { resent: true }, 'the new one');
    t.ok(copies[0].seq > first.seq && copies[0].received_at > first.received_at, 'with a new seq and received_at');
    t.same((await agg.publish(event)).body, { accepted: 1, unique: 0, duplicates: 1 }, 'and it is a duplicate again');

    const stats = await agg.get('/stats');
    t.match(stats, { received: 6, unique_processed: 2, duplicate_dropped: 4 }, 'the re-stored copy counts as unique');
    await eventually(() => topicEvents(agg, 'window.a'), {
      what: 'the window to purge the event (an event never outlives its key)', timeout: PURGE_TIMEOUT_MS, interval: 100,
      until: (events) => events.length === 0,
    });
  });

  t.test('paging with after= while purges run: strictly increasing seqs, no repeat, every retained event seen', async (t) => {
    const agg = await start(t, { RETENTION: 'rolling.*=40' });
    const acked: TestEvent[] = [];
    let publishing = true;
    const publisher = (async () => {
      for (let n = 0; publishing; n++) {
        const batch = [...Array.from({ length: 10 }, () => makeEvent({ topic: 'rolling.a' })), makeEvent({ topic: 'keep.b' })];
        const res = await agg.publish(batch);
        if (res.status !== 200) throw new Error(`publish answered ${res.status}`);
        acked.push(...batch);
        await sleep(5);
      }
    })();

    const reader = eventPager((path) => agg.get(path), 5);
    const stopAt = Date.now() + 2_500;
    while (Date.now() < stopAt) await reader.next();
    publishing = false;
    await publisher;
    await eventually(() => topicEvents(agg, 'rolling.a'), {
      what: 'rolling.a to be cut to 40', timeout: PURGE_TIMEOUT_MS, interval: 50, until: (events) => events.length === 40,
    });
    const keep = acked.filter((e) => e.topic === 'keep.b');
    const retained = await everythingReadable(agg, keep);
    while (reader.position < retained.at(-1).seq) await reader.next();
    const { seen } = reader;
    const seenKeys = new Set(seen.map(keyOf));
    const rolling = acked.filter((e) => e.topic === 'rolling.a').length;
    t.ok(rolling > 200, `purges had work while the reader read (${rolling} rolling.a events published, 40 kept)`);
    t.ok(seen.every((e, i) => i === 0 || e.seq > seen[i - 1].seq), 'seq strictly increases in reading order');
    t.equal(seenKeys.size, seen.length, 'no event seen twice');
    t.equal(retained.filter((e) => !seenKeys.has(keyOf(e))).length, 0, `every one of the ${retained.length} retained events was seen`);
    t.equal(keep.filter((e) => !seenKeys.has(keyOf(e))).length, 0, 'every event of a topic without a rule was seen');
    const ackedKeys = new Set(acked.map(keyOf));
    t.ok(seen.every((e) => ackedKeys.has(keyOf(e))), 'and nothing that was not published');
  });
}
