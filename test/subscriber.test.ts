import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { consume, subscribe, type StreamMessage } from 'pubsub-aggregator/client';
import { logLine } from '../perf/log-lines.js';
import { freePort } from '../scripts/free-port.js';
import { makeEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { startAggregator } from './helpers/in-process.js';
import { readAllEvents, spawnServer } from './helpers/server-process.js';
import { orderProblems } from './helpers/sse.js';

const CLI = new URL('../src/cli.js', import.meta.url).pathname;

t.test('subscribe follows the stream across a kill -9 and restart: every event once, in seq order', async (t) => {
  const dbPath = join(t.testdir(), 'aggregator.db');
  const env = { PORT: String(await freePort()) };
  let server = await spawnServer(dbPath, env);
  t.teardown(() => server.kill());
  const seqs: number[] = [];
  const reconnects: string[] = [];
  const stop = new AbortController();
  const following = (async () => {
    for await (const message of subscribe({ url: server.url, topics: ['orders.eu'], from: 'earliest', signal: stop.signal, onReconnect: (reason) => reconnects.push(reason) })) {
      if (message.type !== 'event') continue;
      t.equal(message.event.seq, message.seq, 'each message is the event JSON of its id');
      t.same(JSON.parse(message.data), message.event, 'data is its JSON text');
      seqs.push(message.seq);
    }
  })();
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
  await t.rejects(subscribe({ url: server.url, from: 'earliest', consumer: 'nobody' }).next(),
    { name: 'AggregatorError', status: 404, code: 'UNKNOWN_CONSUMER' });
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
  const gaps: StreamMessage[] = [];
  const stop = new AbortController();
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const following = (async () => {
    for await (const message of subscribe({ url, from: 'earliest', signal: stop.signal })) gaps.push(message);
  })();
  await eventually(() => resumedFrom.length, { what: 'a reconnect', timeout: 10_000, until: (n) => n >= 2 });
  stop.abort();
  await following;
  t.same(gaps, [{ type: 'gap', seq: 15, after: 0, resumedAfter: 15 }]);
  t.same(resumedFrom.slice(0, 2), [undefined, '15'], 'the reconnect resumes after the gap, not before it');
});

t.test('a durable consumer: pages after the committed position, the same page again until committed, across a kill -9', async (t) => {
  const dbPath = join(t.testdir(), 'aggregator.db');
  const env = { PORT: String(await freePort()) };
  let server = await spawnServer(dbPath, env);
  t.teardown(() => server.kill());
  t.equal((await server.publish(Array.from({ length: 250 }, () => makeEvent()))).status, 200);
  const retries: string[] = [];
  const stop = new AbortController();
  const billing = consume({
    url: server.url, consumer: 'billing', create: { topics: ['orders.eu'], start: 'earliest' },
    limit: 100, waitMs: 1_000, signal: stop.signal, onRetry: (reason) => retries.push(reason),
  });
  const pages = billing[Symbol.asyncIterator]();
  const first = (await pages.next()).value!;
  t.equal(first.events.length, 100);
  const again = (await pages.next()).value!;
  t.same(again.events.map((e) => e.seq), first.events.map((e) => e.seq), 'not committed: the same events come again');
  await billing.commit(first.next);
  t.equal((await server.get('/consumers/billing')).position, first.next, 'the commit is stored');

  await server.kill();
  const restarting = spawnServer(dbPath, env).then((s) => (server = s));
  const seen = [...first.events];
  for (let page = (await pages.next()).value; page; page = (await pages.next()).value) {
    seen.push(...page.events);
    await billing.commit(page.next);
    if (seen.length === 250) break;
  }
  await restarting;
  t.ok(retries.length > 0, `it retried through the restart (${retries[0]})`);
  const stored = await readAllEvents((path) => server.get(path));
  t.same(seen.map((e) => e.seq), stored.map((e) => e.seq), 'every event once, in seq order, none repeated after its commit');
  t.equal((await server.get('/consumers/billing')).lag, 0);

  // A long poll with nothing to return ends empty and is asked again; an event arriving meanwhile comes out.
  const waiting = pages.next();
  await server.publish([makeEvent()]);
  t.equal((await waiting).value!.events.length, 1, 'the long poll delivers the next event');
  stop.abort();
  t.same(await pages.next(), { value: undefined, done: true }, 'the signal ends the iteration');
});

t.test('breaking out of the stream ends its connection', async (t) => {
  const server = await spawnServer(join(t.testdir(), 'aggregator.db'));
  t.teardown(() => server.kill());
  await server.publish([makeEvent(), makeEvent()]);
  for await (const message of subscribe({ url: server.url, from: 'earliest' })) {
    t.equal(message.type, 'event');
    break;
  }
  await eventually(async () => (await server.get('/metrics') as string).match(/^aggregator_stream_subscribers(?:\{[^}]*\})? (\d+)/m)?.[1],
    { what: 'no stream open on the server', timeout: 10_000, until: (open) => open === '0' });
});

t.test('subscribe and consume ask for gzip by default (and decode it), identity with gzip: false', async (t) => {
  const agg = await startAggregator(t);
  await agg.app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(agg.app.server.address() as AddressInfo).port}`;
  const asked: Record<string, (string | undefined)[]> = {};
  agg.app.server.on('request', (req: IncomingMessage) => (asked[req.url!.split('?')[0]!] ??= []).push(req.headers['accept-encoding']));
  // Enough bytes that pages and stream writes are compressed (smaller bodies never are).
  const sent = Array.from({ length: 50 }, (_, i) => logLine(i));
  t.equal((await agg.publish(sent)).status, 200);
  const ids = sent.map((e) => e.event_id);

  for (const gzip of [undefined, false]) {
    const streamed: string[] = [];
    for await (const message of subscribe({ url, from: 'earliest', gzip })) {
      if (message.type === 'event') streamed.push(message.event.event_id);
      if (streamed.length === sent.length) break;
    }
    t.same(streamed, ids, `gzip: ${gzip}: the stream read every event`);
    for await (const page of consume({ url, consumer: `c-${gzip}`, create: { start: 'earliest' }, waitMs: 0, gzip })) {
      t.same(page.events.map((e) => e.event_id), ids, `gzip: ${gzip}: the consumer read every event`);
      break;
    }
  }
  t.same(asked['/events/stream'], ['gzip', 'identity'], 'the stream asked for gzip, then for none');
  t.same([asked['/consumers/c-undefined/events'], asked['/consumers/c-false/events']], [['gzip'], ['identity']], 'so did the consumer');
});

t.test('until=: subscribe, consume and the CLI read a time range to its end and stop by themselves', async (t) => {
  const agg = await startAggregator(t);
  await agg.app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(agg.app.server.address() as AddressInfo).port}`;
  // Three requests, each stamped with its own received_at; the range ends with the second.
  const batches: string[][] = [];
  for (let i = 0; i < 3; i++) {
    const batch = Array.from({ length: 4 }, () => makeEvent());
    t.equal((await agg.publish(batch)).status, 200);
    batches.push(batch.map((e) => e.event_id));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const stored = (await readAllEvents((path) => agg.get(path))) as { event_id: string; received_at: string }[];
  const until = stored.find((e) => e.event_id === batches[1]![0])!.received_at;
  t.not(until, stored.find((e) => e.event_id === batches[2]![0])!.received_at, 'the third request was received later');
  const inRange = [...batches[0]!, ...batches[1]!];

  const streamed: string[] = [];
  for await (const message of subscribe({ url, from: 'earliest', until })) if (message.type === 'event') streamed.push(message.event.event_id);
  t.same(streamed, inRange, 'the stream ended by itself after the range, every event of it once');

  const consumed: string[] = [];
  const range = consume({ url, consumer: 'replay', create: { start: 'earliest' }, until: new Date(until), limit: 3, waitMs: 1_000 });
  for await (const page of range) {
    consumed.push(...page.events.map((e) => e.event_id));
    await range.commit(page.next);
  }
  t.same(consumed, inRange, 'the consumer ended by itself once the range was committed');

  const cli = await promisify(execFile)(process.execPath, [CLI, 'subscribe', '--url', url, '--from', 'earliest', '--until', until], { timeout: 30_000 });
  t.same(cli.stdout.trim().split('\n').map((line) => (JSON.parse(line) as { event_id: string }).event_id), inRange, 'the CLI printed the range and exited 0');
  await t.rejects(subscribe({ url, until: 'yesterday' }).next(), /until must be an RFC 3339 time/, 'a bad until is refused before any request');
});
