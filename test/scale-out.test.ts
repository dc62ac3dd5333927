import { join } from 'node:path';
import t, { type Test } from 'tap';
import { freshDatabase, startCluster } from '../scripts/pg-cluster.js';
import type { PublishedEvent } from '../src/event.js';
import { SyntheticEvents } from '../src/clients/synthetic-events.js';
import { keyOf, makeEvent, prng } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { startPublishers } from './helpers/publishers.js';
import { readAllEvents, spawnServer, type ServerProcess } from './helpers/server-process.js';

/** A replica: a spawned aggregator process on the shared PostgreSQL database. */
async function replica(t: Test, databaseUrl: string, id: string): Promise<ServerProcess> {
  const server = await spawnServer(join(t.testdir(), `${id}-unused.db`), {
    STORE: 'postgres', DATABASE_URL: databaseUrl, REPLICA_ID: id,
  });
  t.teardown(() => server.kill());
  return server;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until /stats on the replica shows the store-wide figures (an idle replica refreshes every second). */
const statsWhen = (server: ServerProcess, done: (stats: any) => boolean): Promise<any> =>
  eventually(() => server.get('/stats'), { what: `store-wide figures on ${server.url}`, timeout: 10_000, interval: 100, until: done });

t.test('two replicas commit concurrently while a reader follows after=: it sees every event exactly once', async (t) => {
  const url = await freshDatabase();
  const replicas = [await replica(t, url, 'a'), await replica(t, url, 'b')];
  const publishers = startPublishers(() => replicas);
  const { acked } = publishers;

  // The reader pages through replica a while both replicas commit, as a consumer of /events would.
  const seen: any[] = [];
  let after = 0;
  const readPage = async () => {
    const page: any[] = await replicas[0]!.get(`/events?after=${after}&limit=300`);
    seen.push(...page);
    if (page.length > 0) after = page.at(-1).seq;
    return page.length;
  };
  const stopAt = Date.now() + 3_000;
  let pages = 0;
  while (Date.now() < stopAt) pages += (await readPage()) > 0 ? 1 : 0;
  await publishers.stop();
  // Rows become readable once no older transaction is in flight anywhere on the server (the commit
  // horizon), which a loaded server may hold back for a moment: read on until the reader is level.
  await eventually(async () => {
    while ((await readPage()) > 0);
    return seen.length;
  }, { what: 'the reader to reach the last acknowledged event', timeout: 10_000, interval: 100, until: (n) => n >= acked.length });

  const seenKeys = new Set(seen.map(keyOf));
  t.ok(pages > 5, `the reader read while publishers wrote (${pages} non-empty pages)`);
  t.equal(seenKeys.size, seen.length, 'no event seen twice');
  t.ok(seen.every((e, i) => i === 0 || e.seq > seen[i - 1].seq), 'seq strictly increases in reading order');
  const missed = acked.filter((e) => !seenKeys.has(keyOf(e)));
  t.equal(missed.length, 0, `every one of ${acked.length} acknowledged events was seen: the reader skipped none`);
  t.equal(seen.length, acked.length, 'and nothing else');

  const stats = await Promise.all(replicas.map((r) => statsWhen(r, (s) => s.unique_processed === acked.length)));
  for (const [i, s] of stats.entries()) {
    t.match(s, { unique_processed: acked.length, duplicate_dropped: 0, received: acked.length }, `replica ${i}: store-wide figures`);
    t.same([...s.topics].sort(), ['t0', 't1', 't2']);
    t.match(s.replica, { id: ['a', 'b'][i], queue_depth: 0 });
  }
  t.equal(stats[0].replica.received + stats[1].replica.received, acked.length, 'replica.received splits the total');
  t.ok(stats.every((s) => s.replica.received > 0), 'both replicas took traffic');
  const metrics: string = (await replicas[1]!.request('GET', '/metrics')).body;
  t.match(metrics, new RegExp(`aggregator_events_received_total\\{replica="b"\\} ${acked.length}\\n`), '/metrics: store-wide, labelled by replica');
  t.match(metrics, new RegExp(`aggregator_replica_events_received_total\\{replica="b"\\} ${stats[1].replica.received}\\n`), "and the replica's own");
});

t.test('the same events sent to two replicas at the same moment: stored once, one new + one duplicate', async (t) => {
  const url = await freshDatabase();
  const [a, b] = [await replica(t, url, 'a'), await replica(t, url, 'b')];
  const singles = Array.from({ length: 60 }, () => makeEvent());
  for (const event of singles) {
    const [x, y] = await Promise.all([a.publish(event), b.publish(event)]);
    t.same([x.status, y.status], [200, 200]);
    if (x.body.unique + y.body.unique !== 1 || x.body.duplicates + y.body.duplicates !== 1) {
      t.fail(`acks for ${event.event_id}: ${JSON.stringify([x.body, y.body])}`);
    }
  }
  const batch = Array.from({ length: 2_000 }, () => makeEvent());
  const [x, y] = await Promise.all([a.publish(batch), b.publish([...batch].reverse())]);
  t.equal(x.body.unique + y.body.unique, 2_000, 'overlapping batches: every event new exactly once');
  t.equal(x.body.duplicates + y.body.duplicates, 2_000, 'and a duplicate exactly once');
  const stored = await readAllEvents(a.get);
  t.equal(stored.length, 2_060);
  t.equal(new Set(stored.map(keyOf)).size, 2_060, 'each stored once');
  t.match(await statsWhen(b, (s) => s.received === 4_120), { unique_processed: 2_060, duplicate_dropped: 2_060, received: 4_120 });
});

t.test('kill -9 of one replica while publishers use both: every acknowledged event stored exactly once', async (t) => {
  const url = await freshDatabase();
  const env = (id: string) => replica(t, url, id);
  const a = await env('a');
  let b = await env('b');
  const random = prng(7);
  const source = new SyntheticEvents({ duplicateRatio: 0.2, topics: 4, idKind: 'v4', random });
  const acked = new Map<string, PublishedEvent>();
  let failed = 0;
  let stop = false;
  const publishers = Array.from({ length: 4 }, async (_, p) => {
    for (let n = 0; !stop; n++) {
      const target = (p + n) % 2 === 0 ? a : b;
      const batch = source.batch(1 + Math.floor(random() * 30));
      const res = await target.publish(batch).catch(() => undefined);
      if (res?.status === 200) for (const e of batch) acked.set(keyOf(e), e);
      else failed++;
    }
  });
  // How long the publishers run before the kill is what varies from seed to seed.
  await sleep(600 + random() * 600);
  await b.kill();
  const failedBefore = failed;
  await eventually(() => failed, { what: 'publishers to meet the killed replica', timeout: 10_000, until: (n) => n > failedBefore });
  b = await env('b');
  await statsWhen(b, (stats) => stats.replica.received > 0);
  stop = true;
  await Promise.all(publishers);

  const stored = await readAllEvents(b.get);
  const counts = new Map<string, number>();
  for (const e of stored) counts.set(keyOf(e), (counts.get(keyOf(e)) ?? 0) + 1);
  t.equal([...acked.keys()].filter((k) => !counts.has(k)).length, 0, `all ${acked.size} acknowledged events are stored`);
  t.ok([...counts.values()].every((n) => n === 1), 'each exactly once');
  const stats = await statsWhen(a, (s) => s.unique_processed === stored.length);
  t.equal(stats.unique_processed, stored.length, 'unique_processed equals the store');
  const all = [...acked.values()];
  let unique = 0;
  for (let i = 0; i < all.length; i += 1_000) unique += (await a.publish(all.slice(i, i + 1_000))).body.unique;
  t.equal(unique, 0, 'republishing every acknowledged event yields only duplicates');
});

t.test('PostgreSQL down: 503 with Retry-After within seconds, /readyz says why, recovery by itself', async (t) => {
  const cluster = await startCluster();
  t.teardown(() => cluster.remove());
  const server = await replica(t, await freshDatabase(cluster.url), 'a');
  const before = Array.from({ length: 20 }, () => makeEvent());
  t.equal((await server.publish(before)).status, 200);

  await cluster.pause();
  const outage = Array.from({ length: 20 }, () => makeEvent());
  const started = Date.now();
  const refused = await server.publish(outage);
  t.equal(refused.status, 503, 'a publish during the outage is refused, not acknowledged');
  t.ok(Date.now() - started < 5_000, `and promptly (${Date.now() - started} ms)`);
  const readiness = await server.request('GET', '/readyz');
  t.equal(readiness.status, 503);
  t.match(readiness.body, { status: 'not_ready', reason: /store error/ });
  const again = await server.publish(outage);
  t.equal(again.status, 503);
  t.ok(Number(again.headers['retry-after']) >= 1, 'with Retry-After');
  t.match(again.body, { code: 'STORE_UNAVAILABLE' });
  // What clients see names the cause, never where the server is: host and port go to the log only.
  const { host, port } = new URL(cluster.url);
  const shown = JSON.stringify([refused.body, readiness.body, await server.get('/stats')]);
  t.notOk(shown.includes(port) || shown.includes(host), `no host or port in 503 bodies, /readyz or /stats: ${shown.slice(0, 300)}`);
  // The details reach the log through the worker's pino stream: give it a moment to arrive.
  t.ok(await eventually(async () => server.logs.some((line) => JSON.stringify(line).includes(port)), {
    what: 'a log line naming the server', timeout: 5_000, interval: 50, until: (found) => found,
  }), 'the log has the details');

  await cluster.resume();
  const retried = await eventually(() => server.publish(outage), {
    what: 'a retried publish to succeed', timeout: 15_000, interval: 200, until: (reply) => reply.status === 200,
  });
  t.equal(retried.status, 200, 'the replica reconnected by itself');
  const stored = await readAllEvents(server.get);
  t.equal(stored.length, 40, 'the events from before and the retried ones, each once');
  t.equal(new Set(stored.map(keyOf)).size, 40);
  t.equal((await server.get('/stats')).consumer.restarts, 0, 'no worker restarts: no crash loop');
});
