import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { IncomingEvent } from '../src/event.js';
import type { SegmentRebuilt } from '../src/store/sqlite/dedup/dedup-index.js';
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
  for (let i = 0; i < 10_000 && store.upkeep(50).pending; i++);
};

/**
 * Keys stored as 1,000-key seals, the store closed and every segment damaged; built on the store itself,
 * so that the layout does not depend on timing. `merged`: 6,000 keys in segments of 4,000, 1,000 and
 * 1,000 keys. `unmerged`: 4,000 keys in four segments of 1,000 (the last sealed by the shutdown), which
 * the next upkeep merges before anything else reads them.
 */
function damagedStore(t: Test, dbPath: string, layout: 'merged' | 'unmerged'): TestEvent[] {
  const stored = keys('stored', layout === 'merged' ? 6_000 : 4_000);
  const store = new SqliteEventStore(dbPath, { synchronous: 'normal', maxBytes: 0, hotKeys: 1_000 });
  for (let i = 0; i < stored.length; i += 1_000) {
    store.commitBatch(stored.slice(i, i + 1_000).map(incoming), checkpoint);
    if (layout === 'merged' || i + 1_000 < stored.length) settle(store);
  }
  store.close();
  const segments = layout === 'merged' ? 3 : 4;
  t.equal(damageLastPairs(dbPath), segments, `${segments} segments, each one damaged`);
  return stored;
}

t.test('H1: after damage to segment pairs, re-publishing 6,000 stored keys stores none again', async (t) => {
  const settings = { dbPath: join(t.testdir(), 'aggregator.db'), dedupHotKeys: 1_000 };
  const stored = damagedStore(t, settings.dbPath, 'merged');
  const agg = await startAggregator(t, settings);
  t.same(await publishAll(t, agg, stored), { unique: 0, duplicates: 6_000 }, 'every stored key is a duplicate');
  t.equal((await readAllEvents((path) => agg.get(path))).length, 6_000, '/events lists each key once');
  t.same(await publishAll(t, agg, keys('fresh', 1_000)), { unique: 1_000, duplicates: 0 }, 'and every new key is new');
  // Stopped here, not at teardown: the test directory goes first, and a worker still sealing writes into it.
  await agg.close();
});

t.test('H1: pairs damaged under an open store are met by its lookups, and never trusted', async (t) => {
  const dbPath = join(t.testdir(), 'open.db');
  const stored = damagedStore(t, dbPath, 'merged').map(incoming);
  const rebuilt: SegmentRebuilt[] = [];
  const store = new SqliteEventStore(dbPath, { synchronous: 'normal', maxBytes: 0, hotKeys: 1_000, onSegmentRebuilt: (r) => rebuilt.push(r) });
  t.teardown(() => store.close());
  // The damage again, now that the files are open (the first start may have read the damaged blocks).
  t.equal(damageLastPairs(dbPath), 3);
  t.equal(sum(store.commitBatch(stored, checkpoint).isNew), 0, 'no stored key is new');
  t.equal(sum(store.commitBatch(keys('fresh', 1_000).map(incoming), checkpoint).isNew), 1_000, 'every new key is new');
  t.equal(rebuilt.length, 3, 'each damaged segment was met, reported and rebuilt once');
  t.match(rebuilt[0], { damage: /block \d+ fails its checksum/, rows: Number });
});

t.test('H2: a merge that meets damaged pairs rebuilds each damaged input from the rows and goes on', async (t) => {
  const dbPath = join(t.testdir(), 'merge.db');
  const stored = damagedStore(t, dbPath, 'unmerged').map(incoming);
  const rebuilt: SegmentRebuilt[] = [];
  const store = new SqliteEventStore(dbPath, { synchronous: 'normal', maxBytes: 0, hotKeys: 1_000, onSegmentRebuilt: (r) => rebuilt.push(r) });
  t.teardown(() => store.close());
  t.doesNotThrow(() => settle(store), 'upkeep goes through');
  t.equal(rebuilt.length, 4, 'the merge met each damaged input, which was rebuilt');
  t.equal(store.upkeep(0).index.segments, 1, 'and then merged them into one');
  const fresh = keys('fresh', 1_000).map(incoming);
  t.equal(sum(store.commitBatch([...stored, ...fresh], checkpoint).isNew), 1_000, 'no stored key is new, every new key is');
});

t.test('H2: through the writer worker, a merge meeting damage leaves it committing (no crash, no 503)', async (t) => {
  const settings = { dbPath: join(t.testdir(), 'aggregator.db'), dedupHotKeys: 1_000 };
  const stored = damagedStore(t, settings.dbPath, 'unmerged');
  const damaged = segmentFiles(settings.dbPath);
  const agg = await startAggregator(t, settings);
  // The worker's first upkeep merges the four segments, before any lookup has read them.
  await eventually(() => damaged.filter((file) => existsSync(file)), {
    what: 'the damaged segments to be merged away', timeout: 60_000, until: (left) => left.length === 0,
  });
  const fresh = keys('fresh', 1_000);
  t.same(await publishAll(t, agg, fresh), { unique: 1_000, duplicates: 0 }, 'new keys are stored, every publish 200');
  t.equal(agg.pipeline.stats().consumer.restarts, 0, 'the writer never crashed');
  t.same(await publishAll(t, agg, [...stored, ...fresh]), { unique: 0, duplicates: 5_000 }, 'no key is stored twice');
  t.equal((await readAllEvents((path) => agg.get(path))).length, 5_000);
  await agg.close();
});
