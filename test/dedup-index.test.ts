import { mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { SqlitePageReader } from '../src/store/sqlite/sqlite-reader.js';
import { SqliteEventStore, type SqliteStoreOptions } from '../src/store/sqlite/sqlite-store.js';
import { modelEvent, modelOptions, modelSteps, runModel, settle } from './helpers/dedup-model.js';

/*
 * The sealed dedup index against a model (the set of keys stored so far): whatever the order of commits,
 * seals, merges, purges, clean restarts and abandoned stores (a kill -9 leaves the files as they were),
 * a stored key is never new again and a new key is never a duplicate.
 */

const checkpoint = { epoch: 'test', position: 0 };
const event = modelEvent;

t.test('keys stay exact through seals, merges, restarts and abandoned stores (model-based)', async (t) => {
  const dir = t.testdir();
  let run = 0;
  const step = fc.oneof(...modelSteps(60, 12, { batch: 6, upkeep: 2, slice: 3, restart: 1, abandon: 1 }));
  await fc.assert(fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), fc.boolean(), fc.boolean(), (steps, weak, purge) => {
    runModel(join(dir, `model-${run++}.db`), modelOptions(weak, purge), steps).store.close();
  }), { numRuns: Number(process.env.MODEL_RUNS ?? 200) });
  t.pass('no run found a stored key called new or a new key called a duplicate');
});

t.test('a grown store restarts from its sealed segments, reading only the newest rows', async (t) => {
  const path = join(t.testdir(), 'grown.db');
  const options: SqliteStoreOptions = { synchronous: 'normal', maxBytes: 0, hotKeys: 1_000 };
  let store = new SqliteEventStore(path, options);
  for (let b = 0; b < 20; b++) {
    store.commitBatch(Array.from({ length: 1_000 }, (_, i) => event('grown', `${b}-${i}`)), checkpoint);
    settle(store);
  }
  const figures = store.upkeep(0).index;
  t.equal(figures.keys, 20_000, 'every key is held');
  t.ok(figures.segments >= 1 && figures.segments < 10, `sealed and merged into few segments (${figures.segments})`);
  t.ok(figures.hotKeys <= 1_000, 'at most DEDUP_HOT_KEYS keys in memory');
  t.ok(figures.memoryBytes < 20_000 * 16, `memory below a table of every key (${figures.memoryBytes} B)`);
  store.close();

  store = new SqliteEventStore(path, options);
  t.equal(store.indexLoad.hotRowsRead, 0, 'after a clean shutdown no row is read at start-up');
  t.equal(store.indexLoad.keys, 20_000);
  const again = store.commitBatch([event('grown', '0-0'), event('grown', '19-999'), event('grown', 'new')], checkpoint);
  t.same([...again.isNew], [0, 0, 1]);

  // No shutdown seal this time: the next start reads the rows above the sealed range, and no more.
  store.commitBatch(Array.from({ length: 500 }, (_, i) => event('grown', `tail-${i}`)), checkpoint);
  const abandoned = store;
  store = new SqliteEventStore(path, options);
  t.ok(store.indexLoad.hotRowsRead > 0 && store.indexLoad.hotRowsRead <= 1_000 + 501, `rows read: ${store.indexLoad.hotRowsRead}`);
  t.same([...store.commitBatch([event('grown', 'tail-499'), event('grown', '5-5')], checkpoint).isNew], [0, 0]);
  store.close();
  abandoned.close();
});

t.test('a damaged or missing segment file is detected and rebuilt from the rows it covers', async (t) => {
  const path = join(t.testdir(), 'damaged.db');
  const options: SqliteStoreOptions = { synchronous: 'normal', maxBytes: 0, hotKeys: 100 };
  let store = new SqliteEventStore(path, options);
  for (let b = 0; b < 3; b++) {
    store.commitBatch(Array.from({ length: 100 }, (_, i) => event('d', `${b}-${i}`)), checkpoint);
    settle(store);
  }
  store.close();
  const dir = `${path}.keys`;
  const files = readdirSync(dir).sort();
  t.ok(files.length >= 1, 'segments on disk');

  const damage: [string, (file: string) => void][] = [
    ['a flipped byte in the filter', (file) => {
      const bytes = readFileSync(file);
      bytes[100] = bytes[100]! ^ 0xff;
      writeFileSync(file, bytes);
    }],
    ['a truncated file', (file) => truncateSync(file, 200)],
    ['a torn header', (file) => {
      const bytes = readFileSync(file);
      bytes[20] = bytes[20]! ^ 0x01;
      writeFileSync(file, bytes);
    }],
  ];
  for (const [what, harm] of damage) {
    harm(join(dir, readdirSync(dir).sort()[0]!));
    store = new SqliteEventStore(path, options);
    t.equal(store.indexLoad.segmentsRebuilt, 1, `${what}: detected and rebuilt`);
    t.ok(store.indexLoad.segmentRowsRead > 0, `${what}: from the rows of its range`);
    const all = Array.from({ length: 3 }, (_, b) => Array.from({ length: 100 }, (_, i) => event('d', `${b}-${i}`))).flat();
    t.ok(store.commitBatch(all, checkpoint).isNew.every((flag) => flag === 0), `${what}: every stored key is still a duplicate`);
    t.same([...store.commitBatch([event('d', `new-${what}`)], checkpoint).isNew], [1], `${what}: a new key is still new`);
    store.close();
  }
});

t.test('a purged key is still a duplicate; a forgotten one (DEDUP_WINDOW) is new again', async (t) => {
  const path = join(t.testdir(), 'purge.db');
  const long = new Date(Date.now() - 3_600_000).toISOString();
  const options: SqliteStoreOptions = {
    synchronous: 'normal', maxBytes: 0, hotKeys: 16,
    retention: { rules: [{ pattern: 'p', matcher: /^p$/, maxAgeMs: 60_000, maxEvents: undefined }], dedupWindowMs: 1_800_000 },
  };
  const store = new SqliteEventStore(path, options);
  t.teardown(() => store.close());
  // Received an hour ago: past the 1-minute retention, and past the 30-minute window.
  store.commitBatch(Array.from({ length: 40 }, (_, i) => event('p', `old-${i}`, long)), checkpoint);
  // Received now: kept, and remembered.
  store.commitBatch(Array.from({ length: 40 }, (_, i) => event('p', `new-${i}`)), checkpoint);
  settle(store);
  const upkeep = store.upkeep(0);
  t.equal(upkeep.lastPurge?.total, 40, 'the old events were purged');
  const replay = store.commitBatch([event('p', 'new-3'), event('p', 'old-3')], checkpoint);
  t.same([...replay.isNew], [0, 1], 'inside the window: a duplicate; outside it: stored again');
  t.same([...store.commitBatch([event('p', 'old-3')], checkpoint).isNew], [0], 'and then a duplicate of its new copy');

  // A key forgotten while its event is still stored (the purge has not come by): the old copy goes with the re-send.
  store.commitBatch([event('p', 'late', long)], checkpoint);
  const again = store.commitBatch([event('p', 'late')], checkpoint);
  t.same([...again.isNew], [1], 'forgotten before its purge: stored again');
  t.equal(again.topicEvents.get('p'), 0, 'and the old copy went in the same transaction (one in, one out)');
  const reader = new SqlitePageReader(path, 1 << 20);
  t.teardown(() => reader.close());
  const copies = (JSON.parse(Buffer.from(reader.page({ topic: 'p', after: 0, limit: 1000 })).toString()) as { event_id: string }[])
    .filter((e) => e.event_id === 'late');
  t.equal(copies.length, 1, 'one copy is listed');
});

t.test('a seal the disk refuses is a StoreError the consumer retries; keys stay exact meanwhile and after', async (t) => {
  const path = join(t.testdir(), 'refused.db');
  const options: SqliteStoreOptions = { synchronous: 'normal', maxBytes: 0, hotKeys: 16 };
  let store = new SqliteEventStore(path, options);
  const batch = (from: number) => Array.from({ length: 20 }, (_, i) => event('r', String(from + i)));
  store.commitBatch(batch(0), checkpoint);
  // The key directory replaced by a file: every segment write fails as a full or broken disk would.
  rmSync(`${path}.keys`, { recursive: true });
  writeFileSync(`${path}.keys`, '');
  // Upkeep slices until the seal reaches its write (on a loaded machine, more than one slice).
  t.throws(() => {
    for (let i = 0; i < 1_000; i++) store.upkeep(50);
  }, { name: 'StoreError', code: 'ENOTDIR' });
  t.same([...store.commitBatch([...batch(10), ...batch(40)], checkpoint).isNew], [...Array(10).fill(0), ...Array(30).fill(1)]);
  rmSync(`${path}.keys`);
  mkdirSync(`${path}.keys`);
  settle(store);
  t.ok(store.upkeep(0).index.segments >= 1, 'the seal went through once the disk took it');
  store.close();
  store = new SqliteEventStore(path, options);
  t.teardown(() => store.close());
  t.same([...store.commitBatch([...batch(0), ...batch(40), event('r', 'new')], checkpoint).isNew], [...Array(40).fill(0), 1]);
});
