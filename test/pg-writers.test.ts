import { join } from 'node:path';
import pg from 'pg';
import t, { type Test } from 'tap';
import { freshDatabase, startCluster } from '../scripts/pg-cluster.js';
import type { IncomingEvent } from '../src/event.js';
import { PostgresEventStore } from '../src/store/postgres/postgres-store.js';
import { keyOf, makeEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { eventPager } from './helpers/pager.js';
import { query } from './helpers/pg-query.js';
import { startPublishers, type Publishers } from './helpers/publishers.js';
import { readAllEvents, spawnServer, type ServerProcess } from './helpers/server-process.js';
import { openStream, orderProblems } from './helpers/sse.js';

/*
 * PostgreSQL with several commits in flight per replica (PG_WRITE_CONNECTIONS, issue 22): batches commit
 * in ring order even though their statements run side by side; a replica killed, cut off or left hanging
 * with several in flight loses no acknowledged event, stores none twice, and no reader skips one.
 */
const LANES = '4';

const event = (eventId: string): IncomingEvent => ({
  topic: 't', eventId, timestamp: '2026-12-03T10:00:00Z', source: 'test', payload: '{}', receivedAt: '2026-12-03T10:00:01.000Z',
});

async function replica(t: Test, url: string, id: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const server = await spawnServer(join(t.testdir(), `${id}-unused.db`), {
    STORE: 'postgres', DATABASE_URL: url, REPLICA_ID: id, PG_WRITE_CONNECTIONS: LANES, ...env,
  });
  t.teardown(() => server.kill());
  return server;
}

/** Waits until `id`'s writer has more than one commit open at once: the case these tests are about. */
async function severalInFlight(url: string, id: string): Promise<void> {
  await eventually(async () => Number((await query<{ n: string }>(url, `
    SELECT count(*) AS n FROM pg_stat_activity
    WHERE application_name LIKE $1 AND (state = 'active' OR state = 'idle in transaction') AND query ~ 'pg_advisory_xact_lock'`,
  [`pubsub-aggregator writer ${id}%`]))[0]!.n), { what: `several commits of ${id} in flight`, timeout: 30_000, interval: 2, until: (n) => n > 1 });
}

/** Every acknowledged event is stored exactly once, and the store's counters equal its rows. */
async function allStoredOnce(t: Test, url: string, load: Publishers, server: ServerProcess): Promise<void> {
  const rows = await query<{ topic: string; event_key: string }>(url, 'SELECT topic, event_key FROM events');
  const stored = new Set(rows.map((r) => keyOf({ topic: r.topic, event_id: r.event_key })));
  t.equal(stored.size, rows.length, 'no key stored twice');
  t.equal(load.acked.filter((e) => !stored.has(keyOf(e))).length, 0, `every one of ${load.acked.length} acknowledged events is stored`);
  const stats = await eventually(() => server.get('/stats'), {
    what: 'the figures to catch up', timeout: 10_000, interval: 100, until: (s: any) => s.unique_processed === rows.length,
  });
  t.equal(stats.unique_processed, rows.length, 'unique_processed equals the rows');
  t.equal(stats.received, stats.unique_processed + stats.duplicate_dropped, 'counters add up');
}

t.test('a batch becomes durable only after the one before it, and rolls back when that one does', async (t) => {
  const url = await freshDatabase();
  const store = await PostgresEventStore.open(url, 'r', undefined, undefined, 2);
  t.teardown(() => store.close());
  t.equal(store.commitsInFlight, 2);
  const blocker = new pg.Client(url);
  await blocker.connect();
  t.teardown(() => blocker.end().catch(() => undefined));
  // An uncommitted row with batch A's key: A's statement waits for it, holding its turn.
  await blocker.query('BEGIN');
  await blocker.query(`INSERT INTO events (seq, topic, event_key, doc, replica, received_at) VALUES (1, 't', 'a', '{}', 'x', 'now')`);

  const a = store.commitBatch([event('a')], { epoch: 'e', position: 10 }, { lane: 0, turn: 0 });
  a.catch(() => undefined);
  await eventually(async () => (await query(url, `SELECT 1 FROM pg_stat_activity WHERE application_name = 'pubsub-aggregator writer r' AND wait_event_type = 'Lock'`)).length,
    { what: 'A waiting for the blocker', timeout: 10_000, until: (n) => n > 0 });
  const b = store.commitBatch([event('b')], { epoch: 'e', position: 20 }, { lane: 1, turn: 1, after: { turn: 0, lane: 0, position: 10 } });
  b.catch(() => undefined);
  await eventually(async () => (await query(url, `SELECT 1 FROM pg_stat_activity WHERE application_name = 'pubsub-aggregator writer r lane 1' AND wait_event = 'advisory'`)).length,
    { what: "B's statement done, waiting for A's turn", timeout: 10_000, until: (n) => n > 0 });
  t.same(await query(url, `SELECT event_key FROM events WHERE event_key = 'b'`), [], 'B is not visible while A is in flight');

  // A fails (its connection ends): B must not commit ahead of it.
  await query(url, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pubsub-aggregator writer r'`);
  await t.rejects(a, { name: 'StoreError' }, 'A failed');
  await t.rejects(b, { name: 'OutOfTurnError' }, 'B rolled back with it');
  t.same(await query(url, `SELECT event_key FROM events WHERE event_key = 'b'`), [], 'B is not stored');
  await blocker.query('ROLLBACK');

  // Tried again in order, both commit, and the checkpoint is B's.
  t.same([...(await store.commitBatch([event('a')], { epoch: 'e', position: 10 }, { lane: 0, turn: 2 })).isNew], [1]);
  const again = await store.commitBatch([event('b')], { epoch: 'e', position: 20 }, { lane: 1, turn: 3, after: { turn: 2, lane: 0, position: 10 } });
  t.same([...again.isNew], [1]);
  t.same(again.counters, { uniqueProcessed: 2, duplicateDropped: 0 }, "B's totals include A's commit");
  t.same(await store.checkpoint(), { epoch: 'e', position: 20 }, 'the checkpoint is the furthest lane');
});

t.test('kill -9 of a replica with several commits in flight: nothing acknowledged lost or stored twice, no reader on the other replica skips', async (t) => {
  const url = await freshDatabase();
  const a = await replica(t, url, 'a');
  const b = await replica(t, url, 'b');
  let target = a;
  const load = startPublishers(() => [target], { count: 8, retry: true });
  t.teardown(load.stop);
  // Queued publishes, one publisher with increasing ids: after the kill what is missing must be one tail.
  const queued: string[] = [];
  let queuing = true;
  const queuer = (async () => {
    for (let n = 0; queuing; n++) {
      const batch = Array.from({ length: 5 }, (_, i) => makeEvent({ topic: 'queued', event_id: `${n}-${i}` }));
      const res = await target.publish(batch, '?ack=queued').catch(() => undefined);
      if (res?.status === 202) queued.push(...batch.map((e) => e.event_id));
    }
  })();
  const pager = eventPager(b.get, 200);
  const stream = await openStream(b.url, '/events/stream?since=2000-01-01T00:00:00Z');
  t.teardown(() => stream.close());
  let paging = true;
  const reading = (async () => {
    while (paging) await pager.next();
  })();

  await severalInFlight(url, 'a');
  await a.kill();
  queuing = false;
  await queuer;
  const restarted = await replica(t, url, 'a');
  target = restarted;
  await eventually(() => load.acked.length, { what: 'publishes through the restarted replica', timeout: 10_000, until: (n) => n > 0 });
  await new Promise((resolve) => setTimeout(resolve, 500));
  await load.stop();
  await allStoredOnce(t, url, load, restarted);

  const stored = await readAllEvents(b.get);
  paging = false;
  await reading;
  await eventually(async () => {
    while ((await pager.next()) > 0);
    return pager.seen.length;
  }, { what: 'the pager to reach the end', timeout: 10_000, interval: 100, until: (n) => n >= stored.length });
  t.same(pager.seen.map((e) => e.seq), stored.map((e) => e.seq), 'the pager on b read every stored event, in seq order, none twice');
  await stream.waitFor(stored.length, 20_000);
  t.same(orderProblems(stream.ids), [], 'the stream on b went in seq order');
  t.same(stream.ids, stored.map((e) => e.seq), 'and delivered every stored event, none skipped');

  const kept = new Set(stored.filter((e) => e.topic === 'queued').map((e) => e.event_id));
  const firstMissing = queued.findIndex((id) => !kept.has(id));
  const tail = firstMissing === -1 ? [] : queued.slice(firstMissing);
  t.ok(tail.every((id) => !kept.has(id)), `?ack=queued lost one tail (${tail.length} of ${queued.length}), no gap before it`);
});

t.test('a writer connection cut in the middle of one of several commits: the replica recovers by itself, nothing lost or counted twice', async (t) => {
  const url = await freshDatabase();
  const a = await replica(t, url, 'a');
  const load = startPublishers(() => [a], { count: 8, retry: true });
  t.teardown(load.stop);
  for (const lane of ['lane 2', 'lane 1', '']) {
    await severalInFlight(url, 'a');
    const cut = await query(url, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE application_name = $1 AND (state = 'active' OR state = 'idle in transaction')`, [`pubsub-aggregator writer a${lane ? ` ${lane}` : ''}`]);
    t.comment(`cut ${lane || 'lane 0'}: ${cut.length} backend(s) in a commit`);
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  await load.stop();
  await allStoredOnce(t, url, load, a);
  t.equal((await a.get('/stats')).consumer.restarts, 0, 'no writer restart');
  t.equal((await a.publish(makeEvent())).status, 200, 'and it takes publishes');
});

t.test('PostgreSQL paused with several commits in flight: 503s meanwhile, then it recovers; nothing acknowledged lost', async (t) => {
  const postgres = await startCluster();
  t.teardown(() => postgres.remove());
  const url = await freshDatabase(postgres.url);
  const a = await replica(t, url, 'a', { PG_STATEMENT_TIMEOUT_MS: '1000' });
  const load = startPublishers(() => [a], { count: 8, retry: true });
  t.teardown(load.stop);
  await severalInFlight(url, 'a');
  await postgres.freeze();
  await new Promise((resolve) => setTimeout(resolve, 4_000));
  await postgres.thaw();
  await eventually(() => a.publish(makeEvent({ topic: 'probe' })), {
    what: 'a publish to succeed after the pause', timeout: 30_000, interval: 200, until: (r) => r.status === 200,
  });
  await new Promise((resolve) => setTimeout(resolve, 500));
  await load.stop();
  t.ok(load.acked.length > 100, `publishes were acknowledged (${load.acked.length})`);
  await allStoredOnce(t, url, load, a);
  t.equal((await a.get('/stats')).consumer.restarts, 0, 'no writer restart');
});
