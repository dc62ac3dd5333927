import Database from 'better-sqlite3';
import t from 'tap';
import { eventually } from './helpers/eventually.js';
import { makeEvent } from './helpers/events.js';
import { startAggregator } from './helpers/in-process.js';
import { sqliteStore } from './helpers/stores.js';
import { consumersSuite } from './suites/consumers.js';

consumersSuite(sqliteStore);

t.test('a database from before consumers is migrated at start-up and keeps its events', async (t) => {
  const settings = await sqliteStore.fresh(t);
  const before = await startAggregator(t, settings);
  t.equal((await before.publish(makeEvent({ topic: 'old' }))).status, 200);
  await before.close();
  // Back to the schema of an old release: no consumers table, no received_at index, none of retention's
  // tables and columns, the ring checkpoint in a table of its own, user_version 1.
  const db = new Database(settings.dbPath);
  const checkpoint = db.prepare('SELECT ring_epoch, ring_position FROM counters').get();
  db.exec(`DROP TABLE consumers; DROP INDEX events_by_received_at; DROP TABLE purged_keys; DROP TABLE key_segments;
           DROP TABLE purges; DROP INDEX topics_by_purged; ALTER TABLE topics DROP COLUMN bytes;
           ALTER TABLE topics DROP COLUMN last_seq; ALTER TABLE topics DROP COLUMN purged_through;
           CREATE TABLE ring_checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), epoch TEXT NOT NULL, position INTEGER NOT NULL);
           INSERT INTO ring_checkpoint SELECT 1, ring_epoch, ring_position FROM counters;
           ALTER TABLE counters DROP COLUMN ring_epoch; ALTER TABLE counters DROP COLUMN ring_position; PRAGMA user_version = 1`);
  db.close();

  const after = await startAggregator(t, settings);
  t.equal((await after.request('PUT', '/consumers/late', { start: 'earliest' })).status, 201);
  const page = await after.request('GET', '/consumers/late/events');
  t.same(page.body.events.map((e: any) => e.topic), ['old'], 'the events stored before the migration are there');
  const [detail] = (await eventually(() => after.get('/stats'), {
    what: 'the store\'s figures read', timeout: 10_000, interval: 50, until: (stats) => stats.topic_details.length === 1,
  })).topic_details;
  t.match(detail, { topic: 'old', events: 1, first_seq: 1, last_seq: 1, purged_through: 0 }, 'and their figures are filled in');
  t.ok(detail.bytes > 0, 'bytes included');
  const migrated = new Database(settings.dbPath, { readonly: true });
  t.same(migrated.prepare('SELECT ring_epoch, ring_position FROM counters').get(), checkpoint, 'the ring checkpoint moved into the counters row');
  migrated.close();
});
