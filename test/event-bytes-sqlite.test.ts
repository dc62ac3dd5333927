import { join } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { parseRetentionRules } from '../src/retention.js';
import { EVENT_BYTES_SQL } from '../src/store/sqlite/sqlite-schema.js';
import { SqliteEventStore } from '../src/store/sqlite/sqlite-store.js';

/*
 * A topic's stored `bytes` on SQLite: what a commit adds (in JS) and what a purge subtracts (in SQL) come
 * from one definition (sqlite-schema.ts), and the figure is the UTF-8 bytes of id, source, payload and
 * timestamp, as it always was: multi-byte characters count as their bytes, not as characters.
 */
t.test('a topic\'s bytes: UTF-8 of id, source, payload and timestamp, added by commits and taken back by purges alike', async (t) => {
  const dbPath = join(t.testdir(), 'aggregator.db');
  const store = new SqliteEventStore(dbPath, {
    synchronous: 'normal', maxBytes: 0, retention: { rules: parseRetentionRules('t=1'), dedupWindowMs: undefined },
  });
  t.teardown(() => store.close());
  // 'é1' is 3 bytes, 'sö' 3, '{"k":"€"}' 11 and the timestamp 24: 41 bytes, though only 36 characters.
  const event = (eventId: string) =>
    ({ topic: 't', eventId, source: 'sö', payload: '{"k":"€"}', timestamp: '2026-11-24T10:00:00.000Z', receivedAt: '2026-11-24T10:00:00.000Z' });
  store.commitBatch([event('é1'), event('é2')], { epoch: 'e', position: 1 });

  const db = new Database(dbPath, { readonly: true });
  t.teardown(() => db.close());
  const stored = () => db.prepare<[], { bytes: number; events: number }>('SELECT bytes, events FROM topics WHERE topic = \'t\'').get();
  t.same(stored(), { bytes: 82, events: 2 }, 'a commit adds each event\'s UTF-8 bytes');
  t.equal(db.prepare(`SELECT sum(${EVENT_BYTES_SQL}) FROM events`).pluck().get(), 82, 'the SQL definition counts the same rows alike');

  store.upkeep(1_000);
  t.same(stored(), { bytes: 41, events: 1 }, 'a purge takes back exactly what the commit added');
});
