import { join } from 'node:path';
import pg from 'pg';
import t, { type Test } from 'tap';
import { freshDatabase } from '../scripts/pg-cluster.js';
import type { IncomingEvent } from '../src/event.js';
import { parseRetentionRules } from '../src/retention.js';
import { eventDoc } from '../src/store/event-doc.js';
import { SWEEP_TOPICS } from '../src/store/postgres/postgres-purge.js';
import { PostgresEventReader } from '../src/store/postgres/postgres-reader.js';
import { eventKey } from '../src/store/postgres/postgres-schema.js';
import { PostgresEventStore } from '../src/store/postgres/postgres-store.js';
import { keyOf, makeEvent, prng, type TestEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { eventPager } from './helpers/pager.js';
import { startPublishers } from './helpers/publishers.js';
import { spawnServer, type ServerProcess } from './helpers/server-process.js';
import { postgresStore } from './helpers/stores.js';
import { everythingReadable, READ_TIMEOUT_MS, retentionSuite } from './suites/retention.js';

retentionSuite(postgresStore);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A replica: a spawned aggregator process on the shared database, with the given retention settings. */
async function replica(t: Test, databaseUrl: string, id: string, env: Record<string, string>): Promise<ServerProcess> {
  const server = await spawnServer(join(t.testdir(), `${id}-unused.db`), { STORE: 'postgres', DATABASE_URL: databaseUrl, REPLICA_ID: id, ...env });
  t.teardown(() => server.kill());
  return server;
}

/** The store as it is: rows (keys held), tombstones, retained events per topic and the counters' figures. */
async function storeFigures(databaseUrl: string) {
  const client = new pg.Client(databaseUrl);
  await client.connect();
  try {
    const { rows: [row] } = await client.query(`
      SELECT (SELECT count(*) FROM events)::int AS rows, (SELECT count(*) FROM events WHERE doc IS NULL)::int AS tombstones,
             (SELECT coalesce(sum(unique_processed), 0) FROM replica_counters)::int AS unique_processed,
             (SELECT coalesce(sum(keys_forgotten), 0) FROM replica_counters)::int AS keys_forgotten,
             (SELECT coalesce(max(total), 0) FROM purges)::int AS purged_total,
             (SELECT json_object_agg(topic, n) FROM (SELECT topic, count(doc) AS n FROM events GROUP BY topic) r) AS retained,
             (SELECT json_object_agg(topic, n) FROM (SELECT topic, sum(events) AS n FROM topic_counts GROUP BY topic) c) AS counted,
             (SELECT json_object_agg(topic, n) FROM (SELECT topic, coalesce(sum(octet_length(doc)), 0) AS n FROM events GROUP BY topic) r) AS bytes,
             (SELECT json_object_agg(topic, n) FROM (SELECT topic, sum(bytes) AS n FROM topic_counts GROUP BY topic) c) AS counted_bytes`);
    return row;
  } finally {
    await client.end();
  }
}

/** Which of `events` have a row (retained or a tombstone) in the store. */
async function storedKeys(databaseUrl: string, events: readonly TestEvent[]): Promise<Set<string>> {
  const client = new pg.Client(databaseUrl);
  await client.connect();
  try {
    const { rows } = await client.query<{ topic: string; event_key: string }>(
      'SELECT topic, event_key FROM events WHERE (topic, event_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))',
      [events.map((e) => e.topic), events.map((e) => eventKey(e.event_id))]);
    return new Set(rows.map((r) => `${r.topic}\u0000${r.event_key}`));
  } finally {
    await client.end();
  }
}

/** The figures the store keeps by itself agree with a count of its rows. */
function figuresAgree(t: Test, figures: Awaited<ReturnType<typeof storeFigures>>): void {
  t.same(figures.counted, figures.retained, 'topic_counts equal the retained rows per topic');
  t.same(figures.counted_bytes, figures.bytes, 'and their bytes');
  t.equal(figures.tombstones, figures.purged_total, 'the purge total equals the tombstones (no DEDUP_WINDOW)');
  t.equal(figures.unique_processed - figures.keys_forgotten, figures.rows, 'keys held (unique_processed - forgotten) equal the rows');
}

t.test('a key past DEDUP_WINDOW is stored again at once, before any purge, by exactly one of two replicas', async (t) => {
  const url = await freshDatabase();
  const policy = { rules: [], dedupWindowMs: 1_000 };
  const [a, b] = await Promise.all([PostgresEventStore.open(url, 'a', policy), PostgresEventStore.open(url, 'b', policy)]);
  const reader = new PostgresEventReader(url, 'a', 1 << 20);
  t.teardown(() => Promise.all([a.close(), b.close(), reader.close()]));
  const event = (id: string, payload = '{}'): IncomingEvent => ({
    topic: 'w', eventId: id, timestamp: '2026-11-24T10:00:00Z', source: 's', payload, receivedAt: new Date().toISOString(),
  });
  const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
  const first = await a.commitBatch(keys.map((k) => event(k)), { epoch: 'e', position: 1 });
  t.equal(first.isNew.reduce((n, x) => n + x, 0), 20);
  await sleep(1_100);

  // The same stale keys sent through both replicas at once, in opposite orders; no upkeep() has run.
  const [x, y] = await Promise.all([
    a.commitBatch(keys.map((k) => event(k, '{"by":"a"}')), { epoch: 'e', position: 2 }),
    b.commitBatch([...keys].reverse().map((k) => event(k, '{"by":"b"}')), { epoch: 'e', position: 1 }),
  ]);
  const newOnBoth = keys.map((_, i) => x.isNew[i]! + y.isNew[keys.length - 1 - i]!);
  t.ok(newOnBoth.every((n) => n === 1), 'each stale key is new for exactly one replica');

  const stored = await eventually(async () => JSON.parse(Buffer.from(await reader.page({ after: 0, limit: 100 })).toString()), {
    what: 'the new copies to be readable', timeout: READ_TIMEOUT_MS, until: (events) => events.length >= 20,
  });
  t.equal(stored.length, 20, 'one copy of each key is visible');
  t.ok(stored.every((e: { payload: { by?: string } }) => e.payload.by !== undefined), 'the new copies, not the old ones');
  const snapshot = await a.snapshot();
  t.same(snapshot.counters, { uniqueProcessed: 40, duplicateDropped: 20 }, 'the re-stored copies count as unique');
  t.same([...snapshot.topicEvents], [['w', 20]], 'the topic still holds 20 retained events');
  const upkeep = await b.upkeep(50);
  t.equal(upkeep.index.keys, 20, 'keys held: one per key');
  t.same((await a.commitBatch([event('k0')], { epoch: 'e', position: 3 })).isNew, [0], 'a re-stored key is a duplicate again');
});

t.test('two replicas publishing while both purge: nothing twice, counters agree with the store, a paging reader misses nothing retained', async (t) => {
  const url = await freshDatabase();
  const env = { RETENTION: 't0=100,t1=2s' };
  const replicas = [await replica(t, url, 'a', env), await replica(t, url, 'b', env)];
  const publishers = startPublishers(() => replicas, { count: 4 });

  const reader = eventPager(replicas[0]!.get, 50);
  const stopAt = Date.now() + 4_000;
  while (Date.now() < stopAt) await reader.next();
  await publishers.stop();
  const { acked } = publishers;
  await eventually(() => storeFigures(url), {
    what: 't0 cut to 100 and t1 purged', timeout: 15_000, interval: 200,
    until: (f) => f.retained?.t0 === 100 && f.retained?.t1 === 0,
  });
  const t2 = acked.filter((e) => e.topic === 't2');
  const retained = await everythingReadable(replicas[1]!, t2);
  while (reader.position < retained.at(-1).seq) await reader.next();
  const { seen } = reader;
  const seenKeys = new Set(seen.map(keyOf));
  t.ok(seen.every((e, i) => i === 0 || e.seq > seen[i - 1].seq), 'the reader saw strictly increasing seqs');
  t.equal(seenKeys.size, seen.length, 'and no event twice');
  t.equal(retained.filter((e) => !seenKeys.has(keyOf(e))).length, 0, `it saw every one of the ${retained.length} retained events`);
  t.equal(t2.filter((e) => !seenKeys.has(keyOf(e))).length, 0, `and every one of the ${t2.length} events of t2 (no rule)`);
  t.same(retained.filter((e) => e.topic === 't2').length, t2.length, 't2 keeps everything');
  t.equal(new Set(retained.map(keyOf)).size, retained.length, 'nothing is stored twice');

  const figures = await storeFigures(url);
  figuresAgree(t, figures);
  t.equal(figures.unique_processed, acked.length, 'unique_processed counts every acknowledged event, purged ones too');
  t.equal((await storedKeys(url, acked)).size, acked.length, 'every acknowledged key is held');
  for (const server of replicas) {
    const stats = await eventually(() => server.get('/stats'), {
      what: 'store-wide figures', timeout: 10_000, interval: 100, until: (s) => s.unique_processed === acked.length,
    });
    t.equal(stats.received, stats.unique_processed + stats.duplicate_dropped, `${server.url}: received = unique + duplicates`);
  }
  let unique = 0;
  for (let i = 0; i < acked.length; i += 1_000) unique += (await replicas[(i / 1_000) % 2]!.publish(acked.slice(i, i + 1_000))).body.unique;
  t.equal(unique, 0, 'republishing every acknowledged event, purged or not, yields only duplicates');
});

t.test('kill -9 of a replica while purges run: nothing acknowledged lost, nothing doubled, counters agree, every key still a duplicate', async (t) => {
  const url = await freshDatabase();
  const env = { RETENTION: 'roll=50' };
  const a = await replica(t, url, 'a', env);
  let b = await replica(t, url, 'b', env);
  const random = prng(12);
  const acked: TestEvent[] = [];
  let stop = false;
  let failed = 0;
  // Large batches to one rolling topic keep a purge backlog, so the kill lands while purge steps run.
  const publishers = Array.from({ length: 3 }, async (_, p) => {
    for (let n = 0; !stop; n++) {
      const batch = Array.from({ length: 100 + Math.floor(random() * 200) }, (_, i) => makeEvent({ topic: i % 10 === 0 ? 'keep' : 'roll' }));
      const res = await ((p + n) % 2 === 0 ? a : b).publish(batch).catch(() => undefined);
      if (res?.status === 200) acked.push(...batch);
      else failed++;
    }
  });
  await sleep(1_000 + random() * 1_000);
  await b.kill();
  const failedBefore = failed;
  await eventually(() => failed, { what: 'publishers to meet the killed replica', timeout: 10_000, until: (n) => n > failedBefore });
  b = await replica(t, url, 'b', env);
  await sleep(500);
  stop = true;
  await Promise.all(publishers);

  await eventually(() => storeFigures(url), {
    what: 'roll cut to 50', timeout: 60_000, interval: 200, until: (f) => f.retained?.roll === 50,
  });
  const keep = acked.filter((e) => e.topic === 'keep');
  const retained = await everythingReadable(b, keep);
  t.equal(new Set(retained.map(keyOf)).size, retained.length, 'nothing is stored twice');
  const retainedKeys = new Set(retained.map(keyOf));
  t.equal(keep.filter((e) => !retainedKeys.has(keyOf(e))).length, 0, `every one of the ${keep.length} acknowledged events of keep (no rule) is retained`);
  t.equal(retained.filter((e) => e.topic === 'roll').length, 50, 'roll holds exactly its newest 50');
  t.equal((await storedKeys(url, acked)).size, acked.length, `every one of the ${acked.length} acknowledged keys is held, retained or purged`);

  const figures = await storeFigures(url);
  figuresAgree(t, figures);
  t.ok(figures.tombstones > 0, `purges happened (${figures.tombstones} events purged)`);
  const stats = await eventually(() => a.get('/stats'), {
    what: 'store-wide figures', timeout: 10_000, interval: 100, until: (s) => s.unique_processed === figures.unique_processed,
  });
  t.equal(stats.received, stats.unique_processed + stats.duplicate_dropped, 'received = unique + duplicates');
  let unique = 0;
  for (let i = 0; i < acked.length; i += 2_000) unique += (await a.publish(acked.slice(i, i + 2_000))).body.unique;
  t.equal(unique, 0, 'republishing every acknowledged event yields only duplicates');
});

t.test('a database from before retention upgrades in place: tombstones allowed, bytes counted from the docs, purges work', async (t) => {
  const url = await freshDatabase();
  const storeEvent = (topic: string, id: string): IncomingEvent => ({
    topic, eventId: id, timestamp: '2026-11-24T10:00:00Z', source: 's', payload: `{"n":"${id}"}`, receivedAt: new Date().toISOString(),
  });
  const before = await PostgresEventStore.open(url, 'a');
  await before.commitBatch(Array.from({ length: 10 }, (_, i) => storeEvent(i % 2 ? 'odd' : 'even', `e${i}`)), { epoch: 'e', position: 10 });
  await before.close();
  // Back to the shape the previous version left: no tombstones, no retention figures.
  const admin = new pg.Client(url);
  await admin.connect();
  t.teardown(() => admin.end());
  await admin.query(`
    DROP TABLE topic_purges, purges;
    ALTER TABLE topic_counts DROP COLUMN bytes;
    ALTER TABLE replica_counters DROP COLUMN keys_forgotten;
    DROP INDEX events_retained, events_retained_by_topic;
    CREATE INDEX events_by_topic ON events (topic, seq);
    ALTER TABLE events ALTER COLUMN doc SET NOT NULL`);

  const store = await PostgresEventStore.open(url, 'a', { rules: [{ pattern: 'odd', matcher: /^odd$/, maxAgeMs: undefined, maxEvents: 2 }], dedupWindowMs: undefined });
  t.teardown(() => store.close());
  const { rows: indexes } = await admin.query<{ name: string }>(
    "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'events' AND (indexname LIKE 'events_%by_topic' OR indexname = 'events_retained') ORDER BY 1");
  t.same(indexes.map((r) => r.name), ['events_retained', 'events_retained_by_topic'], 'the partial indexes replace events_by_topic');
  t.same((await storeFigures(url)).counted_bytes, (await storeFigures(url)).bytes, 'bytes per topic were counted from the docs');

  const upkeep = await store.upkeep(100);
  t.same([...upkeep.topicEvents], [['odd', 2]], 'the purge cut odd to 2');
  t.match(upkeep, { index: { keys: 10 }, lastPurge: { events: 3, total: 3 } });
  figuresAgree(t, await storeFigures(url));
});

t.test('the reader reports purge horizons and topic figures as the purge left them', async (t) => {
  const url = await freshDatabase();
  const store = await PostgresEventStore.open(url, 'a', { rules: parseRetentionRules('a=2'), dedupWindowMs: undefined });
  const reader = new PostgresEventReader(url, 'a', 1 << 20);
  t.teardown(() => Promise.all([store.close(), reader.close()]));
  const events = Array.from({ length: 8 }, (_, i): IncomingEvent => ({
    topic: i < 5 ? 'a' : 'b', eventId: `e${i}`, timestamp: '2026-11-24T10:00:00Z', source: 's', payload: `{"text":"žluť ${i}"}`,
    receivedAt: new Date().toISOString(),
  }));
  await store.commitBatch(events, { epoch: 'e', position: 8 });
  const page = async () => JSON.parse(Buffer.from(await reader.page({ after: 0, limit: 100 })).toString());
  const before: { seq: number; topic: string; received_at: string }[] = await eventually(page, {
    what: 'the events to be readable', timeout: READ_TIMEOUT_MS, until: (events) => events.length === 8,
  });
  t.same(await reader.purgeHorizon(undefined), { max: 0, min: 0 }, 'nothing purged yet');

  await store.upkeep(100);
  const [, , a2, a3, a4] = before.filter((e) => e.topic === 'a');
  const b = before.filter((e) => e.topic === 'b');
  t.same((await page()).map((e: { seq: number }) => e.seq), [a3!.seq, a4!.seq, ...b.map((e) => e.seq)], 'a keeps its newest 2');
  t.same(await reader.purgeHorizon(['a']), { max: a2!.seq, min: a2!.seq }, 'a is purged through its third event');
  t.same(await reader.purgeHorizon(['a', 'b']), { max: a2!.seq, min: 0 }, 'b purged nothing, so nothing is gone for sure below');
  t.same(await reader.purgeHorizon(undefined), { max: a2!.seq, min: 0 }, 'every topic: the same');

  const docBytes = (from: number, to: number) => events.slice(from, to).reduce((n, e) => n + Buffer.byteLength(eventDoc(e)), 0);
  t.same(await reader.topicDetails(['b', 'a', 'unknown']), [
    { topic: 'a', events: 2, bytes: docBytes(3, 5), first_seq: a3!.seq, last_seq: a4!.seq, oldest_received_at: a3!.received_at, purged_through: a2!.seq },
    { topic: 'b', events: 3, bytes: docBytes(5, 8), first_seq: b[0]!.seq, last_seq: b[2]!.seq, oldest_received_at: b[0]!.received_at, purged_through: 0 },
  ], 'retained events, their doc bytes, first and last seq, oldest received_at, purged_through; unknown topics left out');
  t.ok((await reader.diskBytes()) > 100_000, 'disk bytes: the tables and their indexes');
});

t.test('the purge sweep over many topics: the right index whatever the statistics, and no busy sweeping when nothing is due', async (t) => {
  const url = await freshDatabase();
  const store = await PostgresEventStore.open(url, 'a', { rules: parseRetentionRules('t*=1000'), dedupWindowMs: undefined });
  t.teardown(() => store.close());
  const admin = new pg.Client(url);
  await admin.connect();
  t.teardown(() => admin.end());
  // Statistics gone stale: taken when one topic held every row, then 5,000 topics of 20 events each.
  await admin.query(`
    ALTER TABLE events SET (autovacuum_enabled = false);
    ALTER TABLE topic_counts SET (autovacuum_enabled = false);
    INSERT INTO events (seq, topic, event_key, doc, replica, received_at)
      SELECT g, 'hot', 'k' || g, '{}', 'a', '2026-01-01T00:00:00.000Z' FROM generate_series(1, 20000) g;
    ANALYZE events;
    DELETE FROM events;
    INSERT INTO events (seq, topic, event_key, doc, replica, received_at)
      SELECT 100000 + g, 't' || lpad((g % 5000)::text, 5, '0'), 'k' || g, '{}', 'a', '2026-01-01T00:00:00.000Z'
      FROM generate_series(1, 100000) g;
    INSERT INTO topic_counts (topic, replica, events, bytes) SELECT 't' || lpad(g::text, 5, '0'), 'a', 20, 40 FROM generate_series(0, 4999) g`);

  const { rows: [plan] } = await admin.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${SWEEP_TOPICS}`, ['', 200]);
  const scans: string[] = [];
  const walk = (node: any) => {
    if (node['Relation Name'] === 'events') scans.push(`${node['Node Type']} ${node['Index Name'] ?? ''}`.trim());
    for (const child of node.Plans ?? []) walk(child);
  };
  walk((plan!['QUERY PLAN'] as any)[0].Plan);
  t.same(scans, ['Index Scan events_retained_by_topic'], "each topic's oldest retained event through the (topic, seq) index");

  const upkeep = await store.upkeep(1);
  t.equal(upkeep.pending, false, 'a slice that found nothing due leaves the rest of the sweep to the next round of upkeep');
});
