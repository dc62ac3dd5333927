import { join } from 'node:path';
import t, { type Test } from 'tap';
import { freshDatabase } from '../scripts/pg-cluster.js';
import { makeEvent } from './helpers/events.js';
import { spawnServer, type ServerProcess } from './helpers/server-process.js';
import { postgresStore } from './helpers/stores.js';
import { consumersSuite } from './suites/consumers.js';

consumersSuite(postgresStore);

async function replica(t: Test, databaseUrl: string, id: string): Promise<ServerProcess> {
  const server = await spawnServer(join(t.testdir(), `${id}-unused.db`), { STORE: 'postgres', DATABASE_URL: databaseUrl, REPLICA_ID: id });
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
