import { createConnection, createServer, type Socket } from 'node:net';
import pg from 'pg';
import t from 'tap';
import { freshDatabase } from '../scripts/pg-cluster.js';
import type { IncomingEvent } from '../src/event.js';
import { eventDoc } from '../src/store/event-doc.js';
import { PostgresEventReader } from '../src/store/postgres/postgres-reader.js';
import { PostgresEventStore } from '../src/store/postgres/postgres-store.js';

const event = (eventId: string): IncomingEvent => ({
  topic: 't', eventId, timestamp: '2026-11-24T10:00:00Z', source: 'test', payload: '{}', receivedAt: '2026-11-24T10:00:01.000Z',
});

/**
 * A TCP proxy in front of PostgreSQL that, once armed, lets the next query through and then cuts the
 * connection as the answer comes back: the server has committed, the client never hears so.
 */
async function cuttingProxy(target: URL): Promise<{ url: string; armed: boolean; close(): void }> {
  const sockets = new Set<Socket>();
  const proxy = { url: '', armed: false, close: () => (server.close(), sockets.forEach((s) => s.destroy())) };
  const server = createServer((client) => {
    const upstream = createConnection(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    let cutting = false;
    client.on('data', (chunk) => {
      cutting ||= proxy.armed && chunk.includes('commit-batch');
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!cutting) return void client.write(chunk);
      proxy.armed = false;
      client.destroy();
      upstream.destroy();
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.port = String((server.address() as { port: number }).port);
  proxy.url = url.toString();
  return proxy;
}

t.test('a commit whose answer is lost with the connection is read back, not retried into duplicates', async (t) => {
  const proxy = await cuttingProxy(new URL(await freshDatabase()));
  t.teardown(() => proxy.close());
  const store = await PostgresEventStore.open(proxy.url, 'r1');
  t.teardown(() => store.close());

  const first = await store.commitBatch([event('a'), event('b'), event('a')], { epoch: 'e', position: 3 });
  t.same([...first.isNew], [1, 1, 0]);

  const batch = [event('c'), event('b'), event('d'), event('c')];
  proxy.armed = true;
  await t.rejects(store.commitBatch(batch, { epoch: 'e', position: 7 }), { name: 'StoreError' }, 'the answer never arrives');
  t.notOk(proxy.armed, 'the cut happened after the server had the statement');

  const retried = await store.commitBatch(batch, { epoch: 'e', position: 7 });
  t.same([...retried.isNew], [1, 0, 1, 0], 'the retry reports what the lost commit stored');
  t.same(retried.counters, { uniqueProcessed: 4, duplicateDropped: 3 }, 'and counts nothing twice');
  t.same(await store.checkpoint(), { epoch: 'e', position: 7 });

  const next = await store.commitBatch([event('d'), event('e')], { epoch: 'e', position: 9 });
  t.same([...next.isNew], [0, 1], 'later batches commit as usual');
  t.same(next.counters, { uniqueProcessed: 5, duplicateDropped: 4 });
  const snapshot = await store.snapshot();
  t.same(snapshot.counters, next.counters);
  t.same([...snapshot.topicEvents], [['t', 5]]);
});

t.test('replicas starting at once create the schema once, without errors', async (t) => {
  const url = await freshDatabase();
  const stores = await Promise.all(Array.from({ length: 6 }, (_, i) => PostgresEventStore.open(url, `r${i}`)));
  t.teardown(() => Promise.all(stores.map((s) => s.close())));
  const results = await Promise.all(stores.map((s, i) => s.commitBatch([event('shared'), event(`own-${i}`)], { epoch: 'e', position: 2 })));
  t.equal(results.reduce((sum, r) => sum + r.isNew[0]!, 0), 1, 'the shared event is new for exactly one replica');
  t.ok(results.every((r) => r.isNew[1] === 1), "each replica's own event is new");
  t.same((await stores[0]!.snapshot()).counters, { uniqueProcessed: 7, duplicateDropped: 5 });
});

t.test("a batch's docs reach the store exactly, whatever control characters they hold", async (t) => {
  const url = await freshDatabase();
  const store = await PostgresEventStore.open(url, 'r');
  t.teardown(() => store.close());
  // The docs go joined by a character none of them holds: the usual one (\x01) and the next are taken here.
  const payloads = ['"a\x01b"', '"\x02"', '"plain"', '""'];
  const events = payloads.map((payload, i) => ({ ...event(`e${i}`), payload }));
  const result = await store.commitBatch(events, { epoch: 'e', position: 1 });
  t.same([...result.isNew], [1, 1, 1, 1], 'every event stored');
  const client = new pg.Client(url);
  await client.connect();
  t.teardown(() => client.end());
  const { rows } = await client.query<{ doc: string }>('SELECT doc FROM events ORDER BY seq');
  t.same(rows.map((r) => r.doc), events.map(eventDoc), 'each doc whole, in its own row');
  t.same((await store.commitBatch([], { epoch: 'e', position: 2 })).isNew.length, 0, 'an empty batch stores nothing');
});

t.test('the commit horizon waits for this database\'s open transactions, not for other databases\' on the same server', async (t) => {
  const url = await freshDatabase();
  const store = await PostgresEventStore.open(url, 'r1');
  t.teardown(() => store.close());
  const reader = new PostgresEventReader(url, 'r1', 1 << 20);
  t.teardown(() => reader.close());
  const readIds = async () => (JSON.parse(Buffer.from(await reader.page({ after: 0, limit: 100 })).toString()) as { event_id: string }[]).map((e) => e.event_id);
  /** A session on `database` inside a transaction that holds a transaction id, until `end()`. */
  const holder = async (database: string) => {
    const client = new pg.Client(database);
    await client.connect();
    await client.query('BEGIN');
    await client.query('SELECT pg_current_xact_id()');
    return { end: async () => (await client.query('COMMIT'), await client.end()) };
  };

  // Another application's long transaction, in another database of the same server.
  const elsewhere = await holder(await freshDatabase());
  t.teardown(() => elsewhere.end().catch(() => {}));
  await store.commitBatch([event('a')], { epoch: 'e', position: 1 });
  t.same(await readIds(), ['a'], 'a transaction of another database does not hold back the readers');

  // One in this database (another replica's batch in flight) does: a row committed after it began may lie below its seq.
  const here = await holder(url);
  await store.commitBatch([event('b')], { epoch: 'e', position: 2 });
  t.same(await readIds(), ['a'], 'a transaction of this database holds the horizon below the rows committed after it began');
  await here.end();
  t.same(await readIds(), ['a', 'b'], 'once it ends, they are readable');
  await elsewhere.end();
});
