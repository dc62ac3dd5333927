import pg from 'pg';
import t from 'tap';
import { freshDatabase, startCluster } from '../scripts/pg-cluster.js';
import { POSTGRES_MAX_QUEUED_READS, READ_STATEMENT_TIMEOUT_MS, STREAM, STREAM_WITH_PURGES } from '../src/store/postgres/postgres-reader.js';
import { PostgresEventStore } from '../src/store/postgres/postgres-store.js';
import { makeEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { startAggregator } from './helpers/in-process.js';
import { postgresStore } from './helpers/stores.js';
import { bigEvent, publishAll, readersSuite } from './suites/readers.js';

readersSuite(postgresStore);

t.test('PostgreSQL down: /events and /topics answer 503 + Retry-After, naming no host or port; then recover', async (t) => {
  const cluster = await startCluster();
  t.teardown(() => cluster.remove());
  const agg = await startAggregator(t, { store: 'postgres', databaseUrl: await freshDatabase(cluster.url) });
  await agg.publish(makeEvent());
  const { hostname, port } = new URL(cluster.url);

  await cluster.pause();
  for (const url of ['/events', '/topics']) {
    const res = await agg.app.inject({ method: 'GET', url });
    t.equal(res.statusCode, 503, `${url} is 503`);
    t.ok(Number(res.headers['retry-after']) >= 1, 'with Retry-After');
    t.equal(res.json().code, 'STORE_UNAVAILABLE');
    t.notMatch(res.body, new RegExp(`${hostname}|${port}|ECONNREFUSED`), 'the body names no host, port or driver error');
  }
  await cluster.resume();
  const events = await eventually(() => agg.request('GET', '/events'), { what: 'reads to come back', timeout: 15_000, interval: 100, until: (res) => res.status === 200 });
  t.equal(events.body.length, 1, 'reads come back with the server');
});

t.test('limit=10000 of 60 KiB rows: one capped page well within the read budget', async (t) => {
  const agg = await startAggregator(t, await postgresStore.fresh(t));
  await publishAll(t, agg, Array.from({ length: 400 }, () => bigEvent(60)));
  const started = performance.now();
  const res = await agg.app.inject({ method: 'GET', url: '/events?limit=10000' });
  const ms = performance.now() - started;
  t.equal(res.statusCode, 200);
  t.ok(res.rawPayload.length <= agg.config.maxPageBytes, `${res.rawPayload.length} bytes, within the cap`);
  t.ok(ms < READ_STATEMENT_TIMEOUT_MS / 2, `answered in ${ms.toFixed(0)} ms (budget ${READ_STATEMENT_TIMEOUT_MS} ms)`);
});

t.test('readers stuck behind a lock: every read is 503 + Retry-After within its budget, the surplus READERS_BUSY at once, never 500', async (t) => {
  const settings = await postgresStore.fresh(t);
  const agg = await startAggregator(t, settings);
  await agg.publish(makeEvent());
  const blocker = new pg.Client(settings.databaseUrl);
  await blocker.connect();
  await blocker.query('BEGIN');
  await blocker.query('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
  t.teardown(() => blocker.end());

  const started = performance.now();
  const answers = await Promise.all(Array.from({ length: 4 + POSTGRES_MAX_QUEUED_READS + 6 }, async () => {
    const res = await agg.app.inject({ method: 'GET', url: '/events?limit=10000' });
    return { status: res.statusCode, code: res.json().code, retryAfter: res.headers['retry-after'], ms: performance.now() - started };
  }));
  const statuses = [...new Set(answers.map((a) => a.status))];
  t.same(statuses, [503], 'every read is 503');
  t.ok(answers.every((a) => Number(a.retryAfter) >= 1), 'each with Retry-After');
  const busyAtOnce = answers.filter((a) => a.code === 'READERS_BUSY' && a.ms < 500);
  t.ok(busyAtOnce.length >= 6, `${busyAtOnce.length} reads beyond the queue got READERS_BUSY at once`);
  const slowest = Math.max(...answers.map((a) => a.ms));
  t.ok(slowest < 3 * READ_STATEMENT_TIMEOUT_MS, `the slowest answer took ${slowest.toFixed(0)} ms: no read holds a connection past its budget`);

  await blocker.query('ROLLBACK');
  t.equal((await agg.app.inject({ method: 'GET', url: '/events' })).statusCode, 200, 'reads work again once the lock is gone');
});

t.test('a stream page reads through the seq index: no scan of the table, whatever its size', async (t) => {
  const url = await freshDatabase();
  const store = await PostgresEventStore.open(url, 'a');
  t.teardown(() => store.close());
  const admin = new pg.Client(url);
  await admin.connect();
  t.teardown(() => admin.end());
  await admin.query(`
    INSERT INTO events (seq, topic, event_key, doc, replica, received_at)
      SELECT g, 't' || (g % 10), 'k' || g, '{}', 'a', '2026-01-01T00:00:00.000Z' FROM generate_series(1, 50000) g;
    ANALYZE events`);
  for (const [name, statement] of [['a live page', STREAM], ['a catch-up page, with the purge horizon', STREAM_WITH_PURGES]] as const) {
    const { rows: [plan] } = await admin.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${statement}`, [0, 1000, null, 256 * 1024, null]);
    const scans: string[] = [];
    const sorts: string[] = [];
    const walk = (node: any) => {
      if (node['Relation Name'] === 'events') scans.push(node['Node Type']);
      if (node['Node Type'] === 'Sort') sorts.push(JSON.stringify(node['Sort Key']));
      for (const child of node.Plans ?? []) walk(child);
    };
    walk((plan!['QUERY PLAN'] as any)[0].Plan);
    t.ok(scans.length > 0, `${name}: events read: ${scans.join(', ')}`);
    t.notOk(scans.includes('Seq Scan'), `${name}: no sequential scan of events (a page and the pending check seek the seq index)`);
    // The one row of an empty page may be sorted; the page's rows come in seq order from the index.
    t.ok(sorts.every((key) => key.includes('NULL')), `${name}: no sort of the page's rows (${sorts.join(', ') || 'none'})`);
  }
});
