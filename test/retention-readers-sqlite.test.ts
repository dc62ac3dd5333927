import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { createLogger } from '../src/logger.js';
import { SqliteEventStore } from '../src/store/sqlite/sqlite-store.js';
import { SqliteWorkerReader } from '../src/store/sqlite/sqlite-worker-reader.js';

/*
 * The SQLite reader's retention methods (purgeHorizon, topicDetails, diskBytes) against a real database file.
 * The purged state is made here by SQL, the way the store's purge leaves it (events deleted oldest first,
 * their keys in purged_keys, the topic's figures and purged_through updated); the purge itself is tested
 * through the server (retention-sqlite.test.ts).
 */

const RECEIVED = ['2026-11-24T10:00:00.000Z', '2026-11-24T10:00:01.000Z', '2026-11-24T10:00:02.000Z'];

/** A store of `topics` interleaved (seq 1 is topics[0], 2 is topics[1], …), `perTopic` events each, received a second apart per round. */
function storeWith(t: Test, topics: string[], perTopic: number): string {
  const dbPath = join(t.testdir(), 'aggregator.db');
  const store = new SqliteEventStore(dbPath, { synchronous: 'normal', maxBytes: 0 });
  const events = Array.from({ length: perTopic }, (_, round) => topics.map((topic) => ({
    topic, eventId: `${topic}-${round}`, timestamp: '2026-11-24T10:00:00.000Z', source: 'svc',
    payload: JSON.stringify({ round }), receivedAt: RECEIVED[round % RECEIVED.length]!,
  }))).flat();
  store.commitBatch(events, { epoch: 'e', position: events.length });
  store.close();
  return dbPath;
}

/** Purges the events of `topic` up to `through` as the store's purge does, and sets the topic's figures. */
function purge(dbPath: string, topic: string, through: number): void {
  const db = new Database(dbPath);
  db.transaction(() => {
    db.prepare(`INSERT INTO purged_keys (seq, key_hash, topic, event_id, received_at)
                SELECT seq, key_hash, topic, event_id, received_at FROM events WHERE topic = ? AND seq <= ?`).run(topic, through);
    db.prepare('DELETE FROM events WHERE topic = ? AND seq <= ?').run(topic, through);
    db.prepare(`UPDATE topics SET (events, bytes, purged_through) = (
                  SELECT count(*), coalesce(sum(length(CAST(event_id AS BLOB)) + length(CAST(source AS BLOB))
                                                + length(CAST(payload AS BLOB)) + length(timestamp)), 0), ?
                  FROM events WHERE events.topic = topics.topic)
                WHERE topic = ?`).run(through, topic);
  })();
  db.close();
}

async function readerOf(t: Test, dbPath: string): Promise<SqliteWorkerReader> {
  const reader = await SqliteWorkerReader.open({ dbPath, maxPageBytes: 1024 * 1024 }, createLogger('silent', 'test'));
  t.teardown(() => reader.close());
  return reader;
}

t.test('purgeHorizon: the highest and lowest purged_through of the topics read; 0 where nothing was purged', async (t) => {
  // a: seqs 1, 4, 7, 10; b: 2, 5, 8, 11; c: 3, 6, 9, 12.
  const dbPath = storeWith(t, ['a', 'b', 'c'], 4);
  const fresh = await readerOf(t, dbPath);
  t.same(await fresh.purgeHorizon(undefined), { max: 0, min: 0 }, 'nothing purged: every topic');
  t.same(await fresh.purgeHorizon(['a']), { max: 0, min: 0 }, 'nothing purged: one topic');
  await fresh.close();

  purge(dbPath, 'a', 7);
  purge(dbPath, 'b', 2);
  const reader = await readerOf(t, dbPath);
  t.same(await reader.purgeHorizon(['a']), { max: 7, min: 7 });
  t.same(await reader.purgeHorizon(['a', 'b']), { max: 7, min: 2 });
  t.same(await reader.purgeHorizon(['a', 'c']), { max: 7, min: 0 }, 'c purged nothing: min 0');
  t.same(await reader.purgeHorizon(undefined), { max: 7, min: 0 }, 'every topic');
  t.same(await reader.purgeHorizon(['a', 'nope']), { max: 7, min: 7 }, 'an unknown topic has nothing to purge');
  t.same(await reader.purgeHorizon(['nope']), { max: 0, min: 0 });
  t.same(await reader.purgeHorizon([]), { max: 0, min: 0 });

  purge(dbPath, 'c', 12);
  purge(dbPath, 'b', 11);
  t.same(await reader.purgeHorizon(undefined), { max: 12, min: 7 }, 'read again: every topic purged something');
});

t.test('topicDetails: retained events, bytes, first and last retained seq, oldest received_at, purged_through', async (t) => {
  const dbPath = storeWith(t, ['a', 'b', 'c'], 4);
  purge(dbPath, 'a', 4);
  purge(dbPath, 'b', 0);
  purge(dbPath, 'c', 12);
  const reader = await readerOf(t, dbPath);
  const details = await reader.topicDetails(['c', 'a', 'nope', 'b']);
  // Each event: id "x-n" (3 bytes), source "svc" (3), payload {"round":n} (11), timestamp (24).
  const bytes = (events: number) => events * (3 + 3 + 11 + 24);
  t.same(details, [
    { topic: 'a', events: 2, bytes: bytes(2), first_seq: 7, last_seq: 10, oldest_received_at: RECEIVED[2], purged_through: 4 },
    { topic: 'b', events: 4, bytes: bytes(4), first_seq: 2, last_seq: 11, oldest_received_at: RECEIVED[0], purged_through: 0 },
    { topic: 'c', events: 0, bytes: 0, first_seq: 0, last_seq: 0, oldest_received_at: null, purged_through: 12 },
  ], 'by name; unknown topics left out');
  t.same(await reader.topicDetails([]), []);
});

t.test('diskBytes: the database, its WAL and the files of the sealed key directory, which may not exist', async (t) => {
  const dbPath = storeWith(t, ['a'], 3);
  const reader = await readerOf(t, dbPath);
  const files = () => ['', '-wal'].reduce((sum, suffix) => sum + (statSync(dbPath + suffix, { throwIfNoEntry: false })?.size ?? 0), 0);
  rmSync(`${dbPath}.keys`, { recursive: true, force: true });
  const without = await reader.diskBytes();
  t.ok(without > 0, `${without} bytes`);
  t.equal(without, files(), 'no key directory: the database and its WAL');
  mkdirSync(`${dbPath}.keys`);
  t.equal(await reader.diskBytes(), files(), 'an empty key directory adds nothing');
  mkdirSync(`${dbPath}.keys/nested`, { recursive: true });
  writeFileSync(`${dbPath}.keys/segment-1.keys`, Buffer.alloc(10_000));
  writeFileSync(`${dbPath}.keys/segment-2.keys`, Buffer.alloc(2_345));
  t.equal(await reader.diskBytes(), files() + 12_345, 'plus the sealed key files');
});

t.test('a stream that starts from now, or reads to the end, is past every purged event, even when all were purged', async (t) => {
  const dbPath = storeWith(t, ['a', 'b'], 3);
  purge(dbPath, 'a', 5);
  purge(dbPath, 'b', 6);
  const reader = await readerOf(t, dbPath);
  t.equal(await reader.startAfter(undefined), 6, 'from now: after the last seq, though its event is gone');
  const page = await reader.streamPage({ topics: ['a'], after: 0, limit: 10, maxBytes: 1 << 20 });
  t.equal(page.seqs.length, 0, 'nothing retained');
  t.equal(page.end, 6, 'the empty page moves the cursor past every purged seq');
});
