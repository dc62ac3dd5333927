import { join } from 'node:path';
import t from 'tap';
import { freePort } from '../scripts/free-port.js';
import { runSubscriber } from '../src/subscriber/subscriber.js';
import { makeEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { readAllEvents, spawnServer } from './helpers/server-process.js';
import { orderProblems } from './helpers/sse.js';

t.test('subscribe follows the stream across a kill -9 and restart: every event once, in seq order', async (t) => {
  const dbPath = join(t.testdir(), 'aggregator.db');
  const env = { PORT: String(await freePort()) };
  let server = await spawnServer(dbPath, env);
  t.teardown(() => server.kill());
  const seqs: number[] = [];
  const reconnects: string[] = [];
  const stop = new AbortController();
  const following = runSubscriber({ url: server.url, topics: ['orders.eu'], from: 'earliest', signal: stop.signal }, {
    event: (json, seq) => {
      t.equal((JSON.parse(json) as { seq: number }).seq, Number(seq), 'each line is the event JSON of its id');
      seqs.push(Number(seq));
    },
    reconnecting: (reason) => reconnects.push(reason),
  });
  const publish = async (count: number) => {
    const res = await server.publish([...Array.from({ length: count }, () => makeEvent()), makeEvent({ topic: 'other' })]);
    t.equal(res.status, 200);
  };
  await publish(100);
  await eventually(() => seqs.length, { what: 'the first 100 events', timeout: 10_000, until: (n) => n === 100 });
  await server.kill();
  server = await spawnServer(dbPath, env);
  await publish(100);
  await eventually(() => seqs.length, { what: 'the 100 published after the restart', timeout: 15_000, until: (n) => n >= 200 });
  stop.abort();
  await following;

  const stored = (await readAllEvents((path) => server.get(path))).filter((e) => e.topic === 'orders.eu');
  t.same(seqs, stored.map((e) => e.seq), 'exactly the stored events of the topic, none twice, none skipped');
  t.same(orderProblems(seqs), []);
  t.ok(reconnects.length >= 1, `it reconnected by itself (${reconnects.join('; ')})`);
});

t.test('subscribe stops at a refusal that waiting cannot fix', async (t) => {
  const server = await spawnServer(join(t.testdir(), 'aggregator.db'));
  t.teardown(() => server.kill());
  await t.rejects(runSubscriber({ url: server.url, topics: [], from: 'earliest', consumer: 'nobody' }, { event: () => {} }),
    /HTTP 404: .*UNKNOWN_CONSUMER/);
});
