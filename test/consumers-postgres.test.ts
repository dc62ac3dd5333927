import { join } from 'node:path';
import t, { type Test } from 'tap';
import { freshDatabase } from '../scripts/pg-cluster.js';
import { keyOf, makeEvent, prng, type TestEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { readAllEvents, spawnServer, type ServerProcess } from './helpers/server-process.js';
import { postgresStore } from './helpers/stores.js';
import { consumersSuite } from './suites/consumers.js';

consumersSuite(postgresStore);

async function replica(t: Test, databaseUrl: string, id: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const server = await spawnServer(join(t.testdir(), `${id}-unused.db`), { STORE: 'postgres', DATABASE_URL: databaseUrl, REPLICA_ID: id, ...env });
  t.teardown(() => server.kill());
  return server;
}

t.test('a consumer committed through replica A continues on replica B, and back', async (t) => {
  const url = await freshDatabase();
  const [a, b] = [await replica(t, url, 'a'), await replica(t, url, 'b')];
  t.equal((await a.request('PUT', '/consumers/shared', { topics: ['s'], start: 'earliest' })).status, 201);
  t.equal((await b.request('PUT', '/consumers/shared', { topics: ['s'], start: 'earliest' })).status, 200, 'B sees the definition A stored');
  const sent = Array.from({ length: 6 }, (_, i) => makeEvent({ topic: 's', event_id: `e${i}` }));
  for (const [i, event] of sent.entries()) t.equal((await (i % 2 ? b : a).publish(event)).status, 200);

  const received: string[] = [];
  for (const [i, server] of [a, b, a].entries()) {
    const page = await server.request('GET', '/consumers/shared/events?limit=2');
    t.equal(page.body.events.length, 2, `page ${i} through ${server === a ? 'A' : 'B'}`);
    received.push(...page.body.events.map((e: any) => e.event_id));
    t.equal((await server.request('POST', '/consumers/shared/commit', { seq: page.body.next })).status, 200);
  }
  t.same(received.sort(), sent.map((e) => e.event_id).sort(), 'every event once, across the replicas');
  t.match(await b.get('/consumers/shared'), { lag: 0, oldest_unconsumed_at: null });
  t.same((await b.get('/consumers/shared/events')).events, [], 'nothing comes again on B');
});

t.test('kill -9 of a replica during purges and consumer commits: every acked commit and event intact, the other replica serves on', async (t) => {
  const url = await freshDatabase();
  // roll keeps its newest 50: big batches to it keep the replicas' purge steps busy when the kill lands.
  const env = { RETENTION: 'roll=50' };
  const a = await replica(t, url, 'a', env);
  const b = await replica(t, url, 'b', env);
  const names = ['k0', 'k1', 'k2', 'k3'];
  for (const name of names) t.equal((await b.request('PUT', `/consumers/${name}`, { topics: ['keep'], start: 'earliest' })).status, 201);
  const random = prng(18);
  const acked: TestEvent[] = [];
  const refusedByB: number[] = [];
  let stop = false;
  const publishers = [a, b, a, b].map(async (server) => {
    while (!stop) {
      const batch = Array.from({ length: 100 + Math.floor(random() * 200) }, (_, i) => makeEvent({ topic: i % 10 === 0 ? 'keep' : 'roll' }));
      const res = await server.publish(batch).catch(() => undefined);
      if (res?.status === 200) acked.push(...batch);
      else if (server === b) refusedByB.push(res?.status ?? 0);
    }
  });
  // Each consumer pages and commits through A until A dies: the commits answered 200, and the one in flight.
  const received = new Map<string, Set<string>>(names.map((name) => [name, new Set()]));
  const committedOnA = new Map<string, number>();
  const inFlight = new Map<string, number>();
  const committers = names.map(async (name) => {
    for (;;) {
      const page = await a.request('GET', `/consumers/${name}/events?limit=20`).catch(() => undefined);
      if (page?.status !== 200) return;
      for (const event of page.body.events) received.get(name)!.add(keyOf(event));
      inFlight.set(name, page.body.next);
      const res = await a.request('POST', `/consumers/${name}/commit`, { seq: page.body.next }).catch(() => undefined);
      if (res?.status !== 200) return;
      committedOnA.set(name, page.body.next);
    }
  });
  await eventually(async () => names.map((name) => committedOnA.get(name) ?? 0), {
    what: 'every consumer to have committed events through A', timeout: 15_000, interval: 50, until: (seqs) => seqs.every((seq) => seq > 0),
  });
  await new Promise((resolve) => setTimeout(resolve, random() * 1_000));
  await a.kill();
  await Promise.all(committers);

  for (const name of names) {
    const { position } = await b.get(`/consumers/${name}`);
    const acknowledged = committedOnA.get(name) ?? 0;
    t.ok(position === acknowledged || position === inFlight.get(name),
      `${name}: at ${position}, the last commit A acknowledged (${acknowledged}) or the one in flight (${inFlight.get(name)})`);
  }
  // B serves on: every consumer pages and commits through B while the publishers to B go on; a few pages
  // each (publishers that outpace the consumers would keep a drain to the end going), then they stop.
  const drain = async (name: string, pages = Infinity) => {
    for (let n = 0; n < pages; n++) {
      const page = await b.request('GET', `/consumers/${name}/events?limit=500`);
      t.equal(page.status, 200);
      for (const event of page.body.events) received.get(name)!.add(keyOf(event));
      if (page.body.events.length === 0) return;
      t.equal((await b.request('POST', `/consumers/${name}/commit`, { seq: page.body.next })).status, 200);
    }
  };
  await Promise.all(names.map((name) => drain(name, 5)));
  stop = true;
  await Promise.all(publishers);
  t.same(refusedByB, [], 'B answered every publish 200 while A died');

  const keep = acked.filter((e) => e.topic === 'keep');
  // Paged to the end: a fast run acknowledges more keep events than one page holds.
  await eventually(async () => (await readAllEvents((path) => b.get(path))).filter((e) => e.topic === 'keep'), {
    what: `all ${keep.length} acknowledged keep events readable`, timeout: 10_000, interval: 100,
    until: (events) => events.length >= keep.length,
  });
  for (const name of names) {
    await drain(name);
    const missing = keep.filter((e) => !received.get(name)!.has(keyOf(e)));
    t.equal(missing.length, 0, `${name} was handed every one of the ${keep.length} acknowledged keep events, through A or B`);
  }
  t.ok((await b.get('/stats')).store.last_purge?.total > 0, 'purges ran');
  let unique = 0;
  for (let i = 0; i < acked.length; i += 2_000) unique += (await b.publish(acked.slice(i, i + 2_000))).body.unique;
  t.equal(unique, 0, `every one of the ${acked.length} acknowledged keys is held, retained or purged: re-sending them stores nothing`);
});
