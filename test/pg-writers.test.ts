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
    // Small batches, so that the test publishers' load fills them: only full batches commit side by side.
    STORE: 'postgres', DATABASE_URL: url, REPLICA_ID: id, PG_WRITE_CONNECTIONS: LANES, BATCH_MAX: '16', ...env,
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

t.test('PG_WRITE_CONNECTIONS=auto: both lanes while no other replica commits, one while another does, both again once it is quiet', async (t) => {
  const url = await freshDatabase();
  const earlier = await PostgresEventStore.open(url, 'earlier');
  await earlier.commitBatch([event('history')], { epoch: 'e', position: 10 });
  await earlier.close();
  const store = await PostgresEventStore.open(url, 'a', undefined, undefined, 'auto');
  t.teardown(() => store.close());
  const other = await PostgresEventStore.open(url, 'b');
  t.teardown(() => other.close());
  t.equal(store.commitsInFlight, 2);
  await store.snapshot();
  t.equal(store.lanesInUse, 1, 'one lane at the start, until it has watched the others');
  await eventually(async () => {
    await store.changes();
    return store.lanesInUse;
  }, { what: 'both lanes after the watch', timeout: 10_000, interval: 200, until: (lanes) => lanes === 2 });
  t.pass("alone, both lanes after the watch: another replica's earlier commits are history");
  await other.commitBatch([event('b1')], { epoch: 'e', position: 10 });
  await store.changes();
  t.equal(store.lanesInUse, 1, 'another replica committed: one lane');
  const quiet = performance.now();
  await eventually(async () => {
    await store.changes();
    return store.lanesInUse;
  }, { what: 'both lanes again', timeout: 20_000, interval: 200, until: (lanes) => lanes === 2 });
  t.ok(performance.now() - quiet >= 4_000, 'only after the other replica was quiet for a while');
  await other.commitBatch([event('b2')], { epoch: 'e', position: 20 });
  await store.changes();
  t.equal(store.lanesInUse, 1, 'it commits again: one lane again');

  const fixed = await PostgresEventStore.open(url, 'c', undefined, undefined, 2);
  t.teardown(() => fixed.close());
  await fixed.snapshot();
  await other.commitBatch([event('b3')], { epoch: 'e', position: 30 });
  await fixed.changes();
  t.equal(fixed.lanesInUse, 2, 'a fixed count stays, whoever commits');
});

t.test("a deadlock between one replica's turn wait and another replica's keys is a conflict to retry, not a store failure", async (t) => {
  const url = await freshDatabase();
  const a = await PostgresEventStore.open(url, 'a', undefined, undefined, 2);
  t.teardown(() => a.close());
  const b = await PostgresEventStore.open(url, 'b');
  t.teardown(() => b.close());
  const blocker = new pg.Client(url);
  await blocker.connect();
  t.teardown(() => blocker.end().catch(() => undefined));
  const waiting = (name: string, what: string) => eventually(async () => (await query(url,
    `SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock' AND wait_event = $2`, [name, what])).length,
  { what: `${name} waiting on ${what}`, timeout: 10_000, until: (n) => n > 0 });
  // a's batch 0 holds its turn and waits for the blocker's uncommitted 'a0' before it gets to 'j'.
  await blocker.query('BEGIN');
  await blocker.query(`INSERT INTO events (seq, topic, event_key, doc, replica, received_at) VALUES (1, 't', 'a0', '{}', 'x', 'now')`);
  const a0 = a.commitBatch([event('a0'), event('j')], { epoch: 'e', position: 10 }, { lane: 0, turn: 0 });
  a0.catch(() => undefined);
  await waiting('pubsub-aggregator writer a', 'transactionid');
  // a's batch 1 stores 'k' and waits for batch 0's turn.
  const a1 = a.commitBatch([event('k')], { epoch: 'e', position: 20 }, { lane: 1, turn: 1, after: { turn: 0, lane: 0, position: 10 } });
  a1.catch(() => undefined);
  await waiting('pubsub-aggregator writer a lane 1', 'advisory');
  // b stores 'j', then waits for a's batch 1 over 'k'; once the blocker is gone, a's batch 0 waits for b over 'j': a cycle.
  const b0 = b.commitBatch([event('j'), event('k')], { epoch: 'e', position: 10 });
  b0.catch(() => undefined);
  await waiting('pubsub-aggregator writer b', 'transactionid');
  await blocker.query('ROLLBACK');

  const outcomes = await Promise.allSettled([a0, a1, b0]);
  const conflicts = outcomes.filter((o) => o.status === 'rejected' && (o.reason as Error).name === 'StoreConflictError');
  t.equal(conflicts.length, 1, 'the server broke the cycle by aborting one statement, reported as a conflict');
  t.notOk(outcomes.some((o) => o.status === 'rejected' && !['StoreConflictError', 'OutOfTurnError'].includes((o.reason as Error).name)),
    `no other failure (${outcomes.map((o) => (o.status === 'rejected' ? (o.reason as Error).name : 'committed')).join(', ')})`);
  // Each one that did not commit, tried again (as the writer does, in ring order), commits.
  if (outcomes[0].status === 'rejected') await a.commitBatch([event('a0'), event('j')], { epoch: 'e', position: 10 }, { lane: 0, turn: 2 });
  if (outcomes[1].status === 'rejected') await a.commitBatch([event('k')], { epoch: 'e', position: 20 }, { lane: 1, turn: 3 });
  if (outcomes[2].status === 'rejected') await b.commitBatch([event('j'), event('k')], { epoch: 'e', position: 10 });
  const stored = await query<{ event_key: string }>(url, 'SELECT event_key FROM events ORDER BY event_key');
  t.same(stored.map((r) => r.event_key), ['a0', 'j', 'k'], 'every key stored, once');
  const [totals] = await query<{ unique: string; duplicates: string }>(url,
    'SELECT sum(unique_processed) AS unique, sum(duplicate_dropped) AS duplicates FROM replica_counters');
  t.same(totals, { unique: '3', duplicates: '2' }, 'counters: three stored, two duplicates');
});

t.test("a replica's commit aborted by the deadlock detector is committed again: both publishes answered 200, no 503 meanwhile", async (t) => {
  const url = await freshDatabase();
  const a = await replica(t, url, 'a', { BATCH_MAX: '2' });
  const sessions = await Promise.all(['blocker', 'other replica'].map(async () => {
    const client = new pg.Client(url);
    await client.connect();
    t.teardown(() => client.end().catch(() => undefined));
    return client;
  }));
  const [blocker, other] = sessions as [pg.Client, pg.Client];
  const waiting = (name: string, what: string) => eventually(async () => (await query(url,
    `SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock' AND wait_event = $2`, [name, what])).length,
  { what: `${name} waiting on ${what}`, timeout: 10_000, until: (n) => n > 0 });
  const row = (key: string) => `INSERT INTO events (seq, topic, event_key, doc, replica, received_at) VALUES (${key.charCodeAt(0)}, 't', '${key}', '{}', 'x', 'now')`;
  const ev = (id: string) => makeEvent({ topic: 't', event_id: id });

  // The same cycle as above, through the real writer: a's first batch holds its turn, waiting on the blocker.
  await blocker.query('BEGIN');
  await blocker.query(row('a'));
  const first = a.publish([ev('a'), ev('j')]);
  await waiting('pubsub-aggregator writer a', 'transactionid');
  const second = a.publish([ev('k'), ev('l')]);
  await waiting('pubsub-aggregator writer a lane 1', 'advisory');
  // Another replica's transaction holds 'j' and waits for 'k'.
  await other.query('BEGIN');
  await other.query(row('j'));
  const otherDone = other.query(row('k')).catch((error: Error) => error);
  await waiting('', 'transactionid');
  // Past deadlock_timeout (1 s) the waits so far were checked and found no cycle; the one the blocker's
  // end starts (a's first batch waiting for 'j') closes it, so its check finds it: a's batch is the one aborted.
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  await blocker.query('ROLLBACK');
  await eventually(() => a.logs.filter((line) => line.msg === 'commit aborted to break a conflict; committing again').length,
    { what: "a's writer to meet the deadlock", timeout: 10_000 });
  // A publish meanwhile is taken (a store failure would refuse it with 503 at once); it commits after the others.
  const during = a.publish(ev('during'));
  t.notOk(await otherDone instanceof Error, "the other replica's insert went on");
  await other.query('COMMIT');

  const [one, two, three] = await Promise.all([first, second, during]);
  t.equal(three.status, 200, 'the publish meanwhile was not refused');
  t.same([one.status, one.body], [200, { accepted: 2, unique: 1, duplicates: 1 }], "the first batch committed again: 'j' is the other's");
  t.same([two.status, two.body], [200, { accepted: 2, unique: 1, duplicates: 1 }], 'the second after it');
  t.same((await query<{ event_key: string }>(url, 'SELECT event_key FROM events ORDER BY event_key')).map((r) => r.event_key),
    ['a', 'during', 'j', 'k', 'l'], 'every key stored once');
  t.notOk(a.logs.some((line) => line.msg === 'commit failed; retrying the batch'), 'never taken for a store failure');
});

t.test('PG_WRITE_CONNECTIONS=auto: a replica alone commits several batches at once, one at a time once another replica publishes too; nothing lost', async (t) => {
  const url = await freshDatabase();
  const [a, b] = [await replica(t, url, 'a', { PG_WRITE_CONNECTIONS: 'auto' }), await replica(t, url, 'b', { PG_WRITE_CONNECTIONS: 'auto' })];
  let targets = [a];
  const load = startPublishers(() => targets, { count: 8 });
  t.teardown(load.stop);
  await severalInFlight(url, 'a');
  targets = [a, b];
  const switched = await eventually(() => a.logs.find((entry) => /another replica commits/.test(String(entry.msg))), {
    what: 'a to see b commit', timeout: 15_000, interval: 50, until: (entry) => entry !== undefined,
  });
  t.match(switched, { lanesInUse: 1, lanes: 2 }, 'a logs that it commits one batch at a time');
  // b saw a commit from the start, so it never took its second lane. A batch a handed out before the
  // switch may still wait for its turn; after that, none does.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  let mostInFlight = 0;
  for (const started = performance.now(); performance.now() - started < 1_500; ) {
    const rows = await query<{ n: string }>(url, `
      SELECT count(*) AS n FROM pg_stat_activity
      WHERE application_name ~ '^pubsub-aggregator writer [ab]( lane|$)' AND (state = 'active' OR state = 'idle in transaction') AND query ~ 'pg_advisory_xact_lock'
      GROUP BY split_part(application_name, ' ', 3)`);
    mostInFlight = Math.max(mostInFlight, ...rows.map((row) => Number(row.n)));
  }
  t.equal(mostInFlight, 1, 'while both publish, each has one batch in flight at a time');
  await load.stop();
  await allStoredOnce(t, url, load, a);
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
