import { join } from 'node:path';
import t, { type Test } from 'tap';
import { freshDatabase } from '../scripts/pg-cluster.js';
import { keyOf, makeEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { startPublishers } from './helpers/publishers.js';
import { readAllEvents, spawnServer, type ServerProcess } from './helpers/server-process.js';
import { openStream, orderProblems } from './helpers/sse.js';
import { postgresStore } from './helpers/stores.js';
import { streamSuite } from './suites/stream.js';

streamSuite(postgresStore);

async function replica(t: Test, databaseUrl: string, id: string): Promise<ServerProcess> {
  const server = await spawnServer(join(t.testdir(), `${id}-unused.db`), { STORE: 'postgres', DATABASE_URL: databaseUrl, REPLICA_ID: id });
  t.teardown(() => server.kill());
  return server;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

t.test('a subscriber on replica a, six publishers on a and b: every acked event exactly once, seq increasing', async (t) => {
  const url = await freshDatabase();
  const replicas = [await replica(t, url, 'a'), await replica(t, url, 'b')];
  const stream = await openStream(replicas[0]!.url, '/events/stream?after=0');
  const publishers = startPublishers(() => replicas);
  // Publishing lasts until 3,000 events are acknowledged (not a fixed time); the stream is checked on its own below.
  await eventually(() => publishers.acked.length, { what: '3,000 acknowledged events', timeout: 30_000, until: (n) => n >= 3_000 });
  const duringPublishing = stream.ids.length;
  await publishers.stop();
  const { acked } = publishers;
  // A marker after every acked event: once it arrived, nothing published before it is still to come.
  const marker = makeEvent();
  t.equal((await replicas[1]!.publish(marker)).status, 200);
  await eventually(() => stream.events.at(-1)?.data, {
    what: 'the marker', timeout: 20_000, interval: 5, until: (data) => data !== undefined && JSON.parse(data).event_id === marker.event_id,
  });
  stream.close();
  const stored = await readAllEvents((path) => replicas[1]!.get(path));

  t.ok(duringPublishing > 100, `the subscriber received while publishers wrote (${duringPublishing})`);
  t.same(orderProblems(stream.ids), [], 'seq strictly increases, nothing twice');
  t.same(stream.ids, stored.map((e) => e.seq), 'every stored event, none skipped');
  const received = new Set(stream.events.map((e) => keyOf(JSON.parse(e.data))));
  t.equal(acked.filter((e) => !received.has(keyOf(e))).length, 0, `every acked event received (${acked.length})`);
});

t.test('a subscriber on replica a is woken by commits through replica b (NOTIFY), with nothing committed on a', async (t) => {
  const url = await freshDatabase();
  const [a, b] = [await replica(t, url, 'a'), await replica(t, url, 'b')];
  const stream = await openStream(a.url, '/events/stream');
  const latencies: number[] = [];
  for (let i = 0; i < 30; i++) {
    const started = performance.now();
    t.equal((await b.publish(makeEvent())).status, 200);
    await eventually(() => stream.ids.length, { what: `event ${i + 1} on a`, timeout: 2_000, interval: 1, until: (n) => n > i });
    latencies.push(performance.now() - started);
    // Idle in between, so that only a wake-up from b can deliver the next one quickly.
    await sleep(100);
  }
  stream.close();
  latencies.sort((x, y) => x - y);
  const p50 = latencies[15]!;
  t.ok(p50 < 250, `publish on b → received on a: p50 ${p50.toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms`);
});
