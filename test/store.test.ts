import { join } from 'node:path';
import t from 'tap';
import type { IncomingEvent } from '../src/event.js';
import { cyrb53Key } from '../src/store/sqlite/dedup/key-hash.js';
import { KeyIndex } from '../src/store/sqlite/dedup/key-index.js';
import { SqlitePageReader } from '../src/store/sqlite/sqlite-reader.js';
import { SqliteEventStore } from '../src/store/sqlite/sqlite-store.js';

const event = (topic: string, eventId: string, payload = '{}'): IncomingEvent => ({
  topic, eventId, timestamp: '2026-11-24T10:00:00Z', source: 'test', payload, receivedAt: '2026-11-24T10:00:01.000Z',
});

t.test('dedup stays exact when every key hashes alike', async (t) => {
  const path = join(t.testdir(), 'store.db');
  // The worst possible hash: every key collides, so every decision goes through the exact-key path.
  const options = { synchronous: 'normal', maxBytes: 0, keyHash: () => 7 } as const;
  let store = new SqliteEventStore(path, options);
  const checkpoint = { epoch: 'test', position: 0 };

  const first = store.commitBatch([event('a', '1'), event('a', '2'), event('b', '1'), event('a', '1', '{"copy":2}')], checkpoint);
  t.same([...first.isNew], [1, 1, 1, 0], 'three keys are new, the repeat inside the batch is not');
  const second = store.commitBatch([event('a', '2'), event('c', '9'), event('b', '1'), event('c', '9')], checkpoint);
  t.same([...second.isNew], [0, 1, 0, 0]);
  t.same(second.counters, { uniqueProcessed: 4, duplicateDropped: 4 });
  store.close();

  store = new SqliteEventStore(path, options);
  t.same([...store.commitBatch([event('c', '9'), event('d', '1')], checkpoint).isNew], [0, 1], 'after reopening too');
  store.close();

  const reader = new SqlitePageReader(path, 4 * 1024 * 1024);
  const stored = JSON.parse(Buffer.from(reader.page({ after: 0, limit: 100 })).toString()) as { seq: number; topic: string; event_id: string; payload: unknown }[];
  reader.close();
  t.same(stored.map((e) => [e.seq, e.topic, e.event_id]), [[1, 'a', '1'], [2, 'a', '2'], [3, 'b', '1'], [4, 'c', '9'], [5, 'd', '1']]);
  t.same(stored[0]!.payload, {}, 'the first copy won');
});

t.test('the key hash separates topic from id and fits a JavaScript integer', async (t) => {
  t.not(cyrb53Key('ab', 'c'), cyrb53Key('a', 'bc'));
  t.equal(cyrb53Key('orders', 'x'), cyrb53Key('orders', 'x'), 'stable');
  const hashes = new Set<number>();
  for (let i = 0; i < 100_000; i++) {
    const h = cyrb53Key('topic', `id-${i}`);
    if (!Number.isSafeInteger(h) || h < 0) return t.fail(`hash out of range: ${h}`);
    hashes.add(h);
  }
  t.equal(hashes.size, 100_000, 'no collision among 100,000 similar ids');
});

t.test('the in-memory key index: first owner wins, growth keeps every entry, extreme hashes work', async (t) => {
  const index = new KeyIndex(4);
  index.add(0, 1);
  index.add(2 ** 53 - 1, 2);
  index.add(0, 3);
  t.equal(index.get(0), 1, 'the first seq owns a hash');
  t.equal(index.get(2 ** 53 - 1), 2);
  for (let i = 1; i <= 100_000; i++) index.add(i * 7919, i + 10);
  t.equal(index.size, 100_002);
  let wrong = 0;
  for (let i = 1; i <= 100_000; i++) if (index.get(i * 7919) !== i + 10) wrong++;
  t.equal(wrong, 0, 'every entry survives the resizes');
  t.equal(index.get(123), 0, 'absent');
});

t.test('a batch that fails to commit leaves no key behind', async (t) => {
  const store = new SqliteEventStore(join(t.testdir(), 'store.db'), { synchronous: 'normal', maxBytes: 128 * 1024 });
  t.teardown(() => store.close());
  const checkpoint = { epoch: 'test', position: 0 };
  const huge = Array.from({ length: 50 }, (_, i) => event('t', `big-${i}`, JSON.stringify({ blob: 'x'.repeat(10_000) })));
  t.throws(() => store.commitBatch(huge, checkpoint), { name: 'StoreError', code: 'SQLITE_FULL' });
  const small = store.commitBatch([event('t', 'big-0'), event('t', 'big-1')], checkpoint);
  t.same([...small.isNew], [1, 1], 'keys of the rolled-back batch are still new');
  t.same(small.counters, { uniqueProcessed: 2, duplicateDropped: 0 });
});
