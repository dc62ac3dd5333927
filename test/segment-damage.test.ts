import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { IncomingEvent } from '../src/event.js';
import { SqliteEventStore } from '../src/store/sqlite/sqlite-store.js';
import { makeEvent, type TestEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { startAggregator, type TestAggregator } from './helpers/in-process.js';
import { damageLastPairs, segmentFiles } from './helpers/segment-damage.js';
import { readAllEvents } from './helpers/server-process.js';

/*
 * Issue 18, H1 and H2: the pairs of a sealed dedup segment damaged on disk (one flipped bit in the last
 * pair, the ten before it zeroed) between two runs of a real aggregator (real worker, real SQLite file).
 * The rows are the truth: a stored key stays a duplicate, and the writer keeps committing.
 */

const checkpoint = { epoch: 'test', position: 0 };
const sum = (flags: Uint8Array) => flags.reduce((a, b) => a + b, 0);
const incoming = (e: TestEvent): IncomingEvent => ({
  topic: e.topic, eventId: e.event_id, timestamp: e.timestamp, source: e.source, payload: JSON.stringify(e.payload), receivedAt: new Date().toISOString(),
});
const keys = (prefix: string, count: number): TestEvent[] =>
  Array.from({ length: count }, (_, i) => makeEvent({ topic: 'segments', event_id: `${prefix}-${i}` }));

/** Publishes `events` 500 a request, each of which must be answered 200; returns the sums. */
async function publishAll(t: Test, agg: TestAggregator, events: TestEvent[]) {
  let unique = 0;
  let duplicates = 0;
  for (let i = 0; i < events.length; i += 500) {
    const res = await agg.publish(events.slice(i, i + 500));
    if (res.status !== 200) {
      t.fail(`publish ${i / 500 + 1} answered ${res.status}: ${JSON.stringify(res.body)}`);
      return { unique, duplicates, failed: res.body };
    }
    unique += res.body.unique;
    duplicates += res.body.duplicates;
  }
  return { unique, duplicates };
}

const settle = (store: SqliteEventStore) => {
  for (let i = 0; i < 10_000 && store.maintain(50).pending; i++);
};

/**
 * 6,000 keys stored as 1,000-key seals, merged into segments of 4,000, 1,000 and 1,000 keys, the store
 * closed, and every segment damaged. Built on the store itself, so that the layout does not depend on timing.
 */
function damagedStore(t: Test, dbPath: string): TestEvent[] {
  const stored = keys('stored', 6_000);
  const store = new SqliteEventStore(dbPath, { synchronous: 'normal', maxBytes: 0, hotKeys: 1_000 });
  for (let i = 0; i < stored.length; i += 1_000) {
    store.commitBatch(stored.slice(i, i + 1_000).map(incoming), checkpoint);
    settle(store);
  }
  t.equal(store.maintain(0).index.segments, 3, 'three segments');
  store.close();
  t.equal(damageLastPairs(dbPath), 3, 'each one damaged');
  return stored;
}

t.test('H1: after damage to segment pairs, re-publishing 6,000 stored keys stores none again', async (t) => {
  const settings = { dbPath: join(t.testdir(), 'aggregator.db'), dedupHotKeys: 1_000 };
  const stored = damagedStore(t, settings.dbPath);
  const agg = await startAggregator(t, settings);
  t.same(await publishAll(t, agg, stored), { unique: 0, duplicates: 6_000 }, 'every stored key is a duplicate');
  t.equal((await readAllEvents((path) => agg.get(path))).length, 6_000, '/events lists each key once');
  t.same(await publishAll(t, agg, keys('fresh', 1_000)), { unique: 1_000, duplicates: 0 }, 'and every new key is new');
});

t.test('H1: pairs damaged under an open store are met by its lookups, and never trusted', async (t) => {
  const dbPath = join(t.testdir(), 'open.db');
  const stored = damagedStore(t, dbPath).map(incoming);
  const store = new SqliteEventStore(dbPath, { synchronous: 'normal', maxBytes: 0, hotKeys: 1_000 });
  t.teardown(() => store.close());
  // The damage again, now that the files are open (the first start may have read the damaged blocks).
  t.equal(damageLastPairs(dbPath), 3);
  t.equal(sum(store.commitBatch(stored, checkpoint).isNew), 0, 'no stored key is new');
  t.equal(sum(store.commitBatch(keys('fresh', 1_000).map(incoming), checkpoint).isNew), 1_000, 'every new key is new');
});

t.test('H2: a merge that meets damaged pairs rebuilds the segment and goes on', async (t) => {
  const dbPath = join(t.testdir(), 'merge.db');
  const stored = damagedStore(t, dbPath).map(incoming);
  const store = new SqliteEventStore(dbPath, { synchronous: 'normal', maxBytes: 0, hotKeys: 1_000 });
  t.teardown(() => store.close());
  const fresh = keys('fresh', 1_000).map(incoming);
  t.equal(sum(store.commitBatch(fresh, checkpoint).isNew), 1_000);
  // Its seal makes four segments of similar size: the merge reads every damaged one to its end.
  t.doesNotThrow(() => settle(store), 'upkeep goes through');
  t.equal(store.maintain(0).index.segments, 1, 'merged into one');
  t.equal(sum(store.commitBatch([...stored, ...fresh], checkpoint).isNew), 0, 'no stored key is new');
});

t.test('H2: through the writer worker, a merge meeting damage leaves it committing (no crash, no 503)', async (t) => {
  const settings = { dbPath: join(t.testdir(), 'aggregator.db'), dedupHotKeys: 1_000 };
  const stored = damagedStore(t, settings.dbPath);
  const damaged = segmentFiles(settings.dbPath);
  const agg = await startAggregator(t, settings);
  // New keys: their seals bring merge candidates, and the first merge reads every damaged segment.
  const fresh = keys('fresh', 4_000);
  t.same(await publishAll(t, agg, fresh), { unique: 4_000, duplicates: 0 }, 'new keys are stored, every publish 200');
  await eventually(() => damaged.filter((file) => existsSync(file)), {
    what: 'the damaged segments to be merged away', timeout: 60_000, until: (left) => left.length === 0,
  });
  t.equal((await agg.publish(makeEvent({ topic: 'segments' }))).status, 200, 'a publish after the merge is committed');
  t.equal(agg.pipeline.stats().consumer.restarts, 0, 'the writer never crashed');
  t.same(await publishAll(t, agg, [...stored, ...fresh]), { unique: 0, duplicates: 10_000 }, 'no key is stored twice');
  t.equal((await readAllEvents((path) => agg.get(path))).length, 10_001);
});
