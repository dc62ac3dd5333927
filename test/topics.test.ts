import { join } from 'node:path';
import pg from 'pg';
import t, { type Test } from 'tap';
import { freshDatabase } from '../scripts/pg-cluster.js';
import { ConfigError, loadConfig } from '../src/config.js';
import type { IncomingEvent } from '../src/event.js';
import { PostgresEventStore } from '../src/store/postgres/postgres-store.js';
import { makeEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { startAggregator } from './helpers/in-process.js';
import { spawnServer, type ServerProcess } from './helpers/server-process.js';
import { postgresStore, sqliteStore, type TestStore } from './helpers/stores.js';

t.test('50,000 topics: /stats stays small and fast, names the top 100 and counts them all', async (t) => {
  const agg = await startAggregator(t);
  const TOPICS = 50_000;
  for (let from = 0; from < TOPICS; from += 10_000) {
    const batch = Array.from({ length: 10_000 }, (_, i) => makeEvent({ topic: `topic-${from + i}` }));
    t.equal((await agg.publish(batch)).status, 200);
  }
  // Three topics with more events than the rest: they lead the list, in order.
  const hot = ['hot-a', 'hot-a', 'hot-a', 'hot-b', 'hot-b', 'topic-7'].map((topic) => makeEvent({ topic }));
  t.equal((await agg.publish(hot)).status, 200);

  const timings: number[] = [];
  let res;
  for (let i = 0; i < 20; i++) {
    const started = performance.now();
    res = await agg.app.inject({ method: 'GET', url: '/stats' });
    timings.push(performance.now() - started);
  }
  timings.sort((a, b) => a - b);
  const median = timings[10]!;
  t.comment(`/stats at ${TOPICS + 2} topics: ${res!.body.length} bytes, median ${median.toFixed(2)} ms, max ${timings.at(-1)!.toFixed(2)} ms`);
  t.ok(res!.body.length <= 100 * 1024, `body ${res!.body.length} bytes <= 100 KB`);
  t.ok(median < 50, `median ${median.toFixed(2)} ms (target 10 ms on an idle machine)`);

  const stats = res!.json();
  t.equal(stats.topic_count, TOPICS + 2);
  t.equal(stats.topics.length, 100, 'at most 100 topics named');
  t.same(stats.topics.slice(0, 3), ['hot-a', 'hot-b', 'topic-7'], 'most events first');
  t.same(Object.keys(stats.topic_events).sort(), [...stats.topics].sort(), 'topic_events counts the same topics');
  t.match(stats.topic_events, { 'hot-a': 3, 'hot-b': 2, 'topic-7': 2 });
  t.ok(stats.topics.slice(3).every((topic: string) => stats.topic_events[topic] === 1));
  t.equal(stats.unique_processed, TOPICS + 6);
  const metrics = (await agg.app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, new RegExp(`\\naggregator_topics\\{[^}]*\\} ${TOPICS + 2}\\n`), '/metrics: one gauge for the topic count');
});

t.test('MAX_TOPICS is a validated setting with a documented default', async (t) => {
  t.equal(loadConfig([], {}).maxTopics, 100_000);
  t.equal(loadConfig(['--max-topics', '5'], { MAX_TOPICS: '7' }).maxTopics, 5);
  t.throws(() => loadConfig([], { MAX_TOPICS: '0' }), new ConfigError('MAX_TOPICS must be an integer from 1 to 100000000, got "0"'));
});

function topicLimitSuite(store: TestStore, name: string): void {
  t.test(`${name}: the publish that would create topic N+1 gets 429 TOPIC_LIMIT; nothing of it is stored`, async (t) => {
    const agg = await startAggregator(t, { ...(await store.fresh(t)), maxTopics: 3 });
    t.equal((await agg.publish([makeEvent({ topic: 'a' }), makeEvent({ topic: 'b' }), makeEvent({ topic: 'c' })])).status, 200);

    const refused = await agg.publish([makeEvent({ topic: 'a' }), makeEvent({ topic: 'd' })]);
    t.equal(refused.status, 429);
    t.match(refused.body, { statusCode: 429, error: 'Too Many Requests', code: 'TOPIC_LIMIT', message: /MAX_TOPICS/ });
    t.same(Object.keys(refused.body).sort(), ['code', 'error', 'message', 'statusCode']);

    const accepted = await agg.publish([makeEvent({ topic: 'a' }), makeEvent({ topic: 'c' })]);
    t.same(accepted.body, { accepted: 2, unique: 2, duplicates: 0 }, 'existing topics still take events');
    const events = await agg.get('/events');
    t.equal(events.length, 5, 'nothing of the refused request was stored');
    t.notOk(events.some((e: { topic: string }) => e.topic === 'd'));
    t.match(await agg.get('/stats'), { received: 5, unique_processed: 5, topic_count: 3, topic_events: { a: 2, b: 1, c: 2 } });
  });

  t.test(`${name}: topics queued but not yet committed count towards MAX_TOPICS`, async (t) => {
    const settings = await store.fresh(t);
    const agg = await startAggregator(t, { ...settings, maxTopics: 2 });
    t.equal((await agg.publish(makeEvent({ topic: 'a' }))).status, 200);
    const release = await store.blockWrites(settings);
    t.equal((await agg.publish(makeEvent({ topic: 'b' }), '?ack=queued')).status, 202);
    t.equal((await agg.publish(makeEvent({ topic: 'b' }), '?ack=queued')).status, 202, 'a queued topic takes more events');
    t.match(await agg.publish(makeEvent({ topic: 'c' }), '?ack=queued'), { status: 429, body: { code: 'TOPIC_LIMIT' } });
    t.equal(agg.pipeline.stats().counters.uniqueProcessed, 1, 'b was still uncommitted when c was refused');
    await release();
    await agg.settle();
    t.match(await agg.get('/stats'), { unique_processed: 3, topic_count: 2, topic_events: { a: 1, b: 2 } });
    t.match(await agg.publish(makeEvent({ topic: 'c' })), { status: 429, body: { code: 'TOPIC_LIMIT' } }, 'still refused once committed');
  });
}

topicLimitSuite(sqliteStore, 'SQLite');
topicLimitSuite(postgresStore, 'PostgreSQL');

const storeEvent = (topic: string, eventId: string): IncomingEvent => ({
  topic, eventId, timestamp: '2026-11-24T10:00:00Z', source: 'test', payload: '{}', receivedAt: '2026-11-24T10:00:01.000Z',
});

/**
 * Waits until every commit so far is below the commit horizon, so the next read of changes sees it: another
 * test's open transaction on the shared server may hold the horizon back for a moment.
 */
async function settled(url: string): Promise<void> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    await eventually(async () => (await client.query<{ past: boolean }>(
      'SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint > coalesce(max(xid), 0) AS past FROM ring_checkpoints')).rows[0]!.past,
    { what: 'the commit horizon to pass the last commit', timeout: 10_000 });
  } finally {
    await client.end();
  }
}

const topicsOf = async (read: Promise<{ topicEvents: Map<string, number> }>) => [...(await read).topicEvents].sort();

t.test('PostgreSQL: the refresh reads only the topics changed since the last one, with store-wide totals', async (t) => {
  const url = await freshDatabase();
  const a = await PostgresEventStore.open(url, 'a');
  const b = await PostgresEventStore.open(url, 'b');
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const checkpoint = (position: number) => ({ epoch: 'e', position });
  await a.commitBatch([storeEvent('old', '1'), storeEvent('shared', '1')], checkpoint(1));
  await settled(url);
  t.same(await topicsOf(a.snapshot()), [['old', 1], ['shared', 1]], 'the first read has every topic');

  await b.commitBatch([storeEvent('shared', '2'), storeEvent('shared', '3'), storeEvent('new', '1')], checkpoint(1));
  await settled(url);
  t.same(await topicsOf(a.changes()), [['new', 1], ['shared', 3]],
    "then only the topics b changed, with both replicas' events; not the unchanged one");

  await a.commitBatch([storeEvent('shared', '4')], checkpoint(2));
  await settled(url);
  t.same(await topicsOf(a.changes()), [['shared', 4]], 'its own commits too');
  t.same(await topicsOf(a.changes()), [], 'nothing changed: nothing read');
  t.same((await a.changes()).counters, { uniqueProcessed: 6, duplicateDropped: 0 }, 'the counters are read every time');
});

t.test('PostgreSQL: a database from before topic_counts.changed is migrated in place', async (t) => {
  const url = await freshDatabase();
  const client = new pg.Client(url);
  await client.connect();
  await client.query(`CREATE TABLE topic_counts (topic text NOT NULL, replica text NOT NULL, events bigint NOT NULL, PRIMARY KEY (topic, replica));
                      INSERT INTO topic_counts VALUES ('legacy', 'a', 7), ('other', 'a', 1)`);
  await client.end();
  const store = await PostgresEventStore.open(url, 'a');
  t.teardown(() => store.close());
  t.same(await topicsOf(store.snapshot()), [['legacy', 7], ['other', 1]]);
  await store.commitBatch([storeEvent('legacy', 'x')], { epoch: 'e', position: 1 });
  await settled(url);
  t.same(await topicsOf(store.changes()), [['legacy', 8]]);
});

/** A replica: a spawned aggregator process on the shared PostgreSQL database. */
async function replica(t: Test, databaseUrl: string, id: string): Promise<ServerProcess> {
  const server = await spawnServer(join(t.testdir(), `${id}-unused.db`), {
    STORE: 'postgres', DATABASE_URL: databaseUrl, REPLICA_ID: id,
  });
  t.teardown(() => server.kill());
  return server;
}

t.test("PostgreSQL: a topic created through replica B shows in replica A's /stats with store-wide counts", async (t) => {
  const url = await freshDatabase();
  const a = await replica(t, url, 'a');
  const b = await replica(t, url, 'b');
  t.equal((await a.publish([makeEvent({ topic: 'shared' }), makeEvent({ topic: 'shared' }), makeEvent({ topic: 'only-a' })])).status, 200);
  t.equal((await b.publish([makeEvent({ topic: 'shared' }), makeEvent({ topic: 'only-b' })])).status, 200);
  const expected = { 'shared': 3, 'only-a': 1, 'only-b': 1 };
  for (const [name, server] of [['a', a], ['b', b]] as const) {
    const stats = await eventually(() => server.get('/stats'), {
      what: `store-wide topics on replica ${name}`, timeout: 10_000, interval: 100, until: (s) => s.topic_count === 3 && s.topic_events.shared === 3,
    });
    t.match(stats, { topic_count: 3, unique_processed: 5, topic_events: expected }, `replica ${name}`);
    t.same([...stats.topics].sort(), Object.keys(expected).sort());
  }
});
