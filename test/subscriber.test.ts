import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
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

t.test('subscribe hands on a gap and, reconnecting after it, resumes after the gap\'s id', async (t) => {
  // A server that sends a gap, then ends the stream; it records the Last-Event-ID of each connection.
  const resumedFrom: (string | undefined)[] = [];
  const server = createServer((req, res) => {
    resumedFrom.push(req.headers['last-event-id'] as string | undefined);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(resumedFrom.length === 1 ? 'retry: 10\n\nid: 15\nevent: gap\ndata: {"after":0,"resumed_after":15}\n\n' : 'retry: 10\n\n');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const gaps: string[] = [];
  const stop = new AbortController();
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const following = runSubscriber({ url, topics: [], from: 'earliest', signal: stop.signal }, {
    event: () => {},
    gap: (json) => gaps.push(json),
  });
  await eventually(() => resumedFrom.length, { what: 'a reconnect', timeout: 10_000, until: (n) => n >= 2 });
  stop.abort();
  await following;
  t.same(gaps, ['{"after":0,"resumed_after":15}']);
  t.same(resumedFrom.slice(0, 2), [undefined, '15'], 'the reconnect resumes after the gap, not before it');
});
