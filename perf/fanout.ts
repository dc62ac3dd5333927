/*
 * node dist/perf/fanout.js [--subscribers 10,100,1000] [--batches 300] [--stalled 1000] [--stalled-events 1000000]
 *                          [--catch-up 1000000] [--replicas-subscribers 100]
 *
 * The subscribe side under load, on SQLite. For each subscriber count N: publish `--batches` batches of 100
 * (4 connections; fewer for large N, so that a run delivers at most 3M events) once with no subscribers,
 * then again with N caught-up subscribers of /events/stream, and
 * report the publish rate of both runs (same run, same server), deliveries per second to the subscribers,
 * and commit → subscriber latency (a publish's 200 arrives once its batch is committed; a probe subscriber
 * notes when the batch's last event reaches it), with the catch-up pages of subscribers that fell behind the
 * shared feed meanwhile (read from the store / taken from another's read). Then `--stalled` subscribers that never read while
 * `--stalled-events` events are published: the server's RSS growth. Then one subscriber from after=0 over
 * `--catch-up` stored events: its catch-up rate. Last, two replicas on one PostgreSQL (a throwaway cluster):
 * `--replicas-subscribers` subscribers on replica A while batches are published through replica B, for
 * commit → subscriber latency across replicas (woken by NOTIFY, bounded by the commit horizon).
 */
import { request, type ClientRequest } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { PublishedEvent } from '../src/event.js';
import { SyntheticEvents } from '../src/clients/synthetic-events.js';
import { SseParser } from '../src/clients/sse-parser.js';
import { startCluster } from '../scripts/pg-cluster.js';
import { postgresTarget, sqliteTarget } from './deployments.js';
import { startServer, type PerfServer } from './server.js';

const { values } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '10,100,1000' },
    batches: { type: 'string', default: '300' },
    stalled: { type: 'string', default: '1000' },
    'stalled-events': { type: 'string', default: '1000000' },
    'catch-up': { type: 'string', default: '1000000' },
    'replicas-subscribers': { type: 'string', default: '100' },
  },
});
const BATCH = 100;
const CONNECTIONS = 4;
const FRAME_END = Buffer.from('\nevent: event\n');

/** A subscriber that only counts the events it receives (cheap, so the load generator stays light). */
function countingSubscriber(url: string, counts: { events: number }, query = ''): Promise<ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/events/stream${query}`, { headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`/events/stream answered ${res.statusCode}`));
      const keep = FRAME_END.length - 1;
      let tail: Buffer = Buffer.alloc(0);
      res.on('data', (chunk: Buffer) => {
        // A frame marker may straddle two chunks: the seam (the previous chunk's last bytes and this one's
        // first, too short to hold a marker of either alone) is searched on its own, so no chunk is copied.
        const seam = Buffer.concat([tail, chunk.subarray(0, keep)]);
        let found = 0;
        for (let at = seam.indexOf(FRAME_END); at >= 0; at = seam.indexOf(FRAME_END, at + 1)) found++;
        for (let at = chunk.indexOf(FRAME_END); at >= 0; at = chunk.indexOf(FRAME_END, at + 1)) found++;
        counts.events += found;
        tail = chunk.length >= keep ? chunk.subarray(chunk.length - keep) : seam.subarray(Math.max(0, seam.length - keep));
      });
      resolve(req);
    });
    req.on('error', reject).end();
  });
}

/** A subscriber that never reads: its socket stays paused from the first byte on. */
function stalledSubscriber(url: string): Promise<ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/events/stream`, { headers: { accept: 'text/event-stream' } }, (res) => {
      res.pause();
      resolve(req);
    });
    req.on('error', reject).end();
  });
}

/**
 * The subscribers run on threads of their own, as they would be other clients: the counting ones on one,
 * the probe on another. On the publisher's event loop they would slow both and measure the load generator,
 * not the server; the probe beside 100 counting streams would note arrivals when that thread got to them.
 * Times are wall-clock ms (timeOrigin + now), comparable across threads.
 */
interface SubscriberThread {
  /** Events counted so far (the probe: events noted). */
  events(): number;
  stop(): Promise<void>;
}

interface ProbeThread extends SubscriberThread {
  /** The arrival time of each event id so far. */
  arrivals(): Promise<Map<string, number>>;
}

/** What a subscriber thread runs: `count` counting subscribers, or the probe. */
type SubscriberTask = { url: string } & ({ kind: 'count'; count: number } | { kind: 'probe' });
/** A task and the counter it reports `events` in. */
type SubscriberWork = SubscriberTask & { counter: Int32Array };

async function startThread(work: SubscriberTask): Promise<SubscriberThread & { worker: Worker }> {
  const counter = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(new URL(import.meta.url), { workerData: { ...work, counter } satisfies SubscriberWork, argv: [] });
  await new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
  return { worker, events: () => Atomics.load(counter, 0), stop: async () => void (await worker.terminate()) };
}

const countingThread = (url: string, count: number): Promise<SubscriberThread> => startThread({ url, kind: 'count', count });

async function probeThread(url: string): Promise<ProbeThread> {
  const { worker, ...thread } = await startThread({ url, kind: 'probe' });
  return { ...thread, arrivals: () => new Promise((resolve) => worker.once('message', resolve).postMessage('report')) };
}

async function runSubscriberThread(work: SubscriberWork): Promise<void> {
  const { url, counter } = work;
  const counts = {
    get events() {
      return Atomics.load(counter, 0);
    },
    set events(value: number) {
      Atomics.store(counter, 0, value);
    },
  };
  if (work.kind === 'probe') {
    const arrivals = new Map<string, number>();
    await probeSubscriber(url, arrivals, counts);
    parentPort!.once('message', () => parentPort!.postMessage(arrivals));
  } else {
    for (let i = 0; i < work.count; i++) await countingSubscriber(url, counts);
  }
  parentPort!.postMessage('connected');
}

const wallClock = (): number => performance.timeOrigin + performance.now();

/** The probe: parses the stream and notes when each event id arrives. */
function probeSubscriber(url: string, arrivals: Map<string, number>, counts: { events: number }): Promise<ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/events/stream`, { headers: { accept: 'text/event-stream' } }, (res) => {
      const parser = new SseParser();
      res.setEncoding('utf8').on('data', (chunk: string) => {
        const now = wallClock();
        for (const message of parser.feed(chunk)) {
          if (message.event === 'event') arrivals.set((JSON.parse(message.data) as { event_id: string }).event_id, now);
        }
        counts.events = arrivals.size;
      });
      resolve(req);
    });
    req.on('error', reject).end();
  });
}

/**
 * One batch, resent (publishing is idempotent) when the connection drops before any answer: generating a
 * large run's bodies blocks this loop for seconds, past the server's keep-alive timeout, so the first request
 * may go out on a socket the server has just closed.
 */
async function publishOnce(url: string, body: PublishedEvent[], index: number): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch(`${url}/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    } catch (error) {
      if (attempt === 3) throw new Error(`publish of batch ${index} failed ${attempt} times: ${((error as Error).cause as Error | undefined)?.message ?? (error as Error).message}`);
    }
  }
}

/** Publishes `batches` batches of 100 over 4 connections; returns the rate and each batch's last id and ack time. */
async function publishBatches(url: string, batches: number): Promise<{ eventsPerSecond: number; acked: Map<string, number> }> {
  const source = new SyntheticEvents({ duplicateRatio: 0, topics: 16, idKind: 'v4', source: 'perf' });
  const bodies = Array.from({ length: batches }, () => source.batch(BATCH));
  const acked = new Map<string, number>();
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    for (let i = next++; i < batches; i = next++) {
      const res = await publishOnce(url, bodies[i]!, i);
      if (res.status !== 200) throw new Error(`publish answered ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
      acked.set(bodies[i]!.at(-1)!.event_id, wallClock());
    }
  }));
  return { eventsPerSecond: (batches * BATCH) / ((performance.now() - started) / 1000), acked };
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;

async function until(condition: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  for (const deadline = performance.now() + ms; !(await condition()); await new Promise((resolve) => setTimeout(resolve, 20))) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

async function subscribers(url: string): Promise<number> {
  return ((await (await fetch(`${url}/stats`)).json()) as { subscribers: number }).subscribers;
}

/** The server's catch-up pages so far: read from the store, and shared from another stream's read. */
async function catchUpPages(url: string): Promise<{ store: number; shared: number }> {
  const metrics = await (await fetch(`${url}/metrics`)).text();
  const count = (read: string) => Number(new RegExp(`^aggregator_stream_catch_up_pages_total\\{[^}]*read="${read}"[^}]*\\} (\\d+)`, 'm').exec(metrics)?.[1] ?? NaN);
  return { store: count('store'), shared: count('shared') };
}

async function withServer<T>(run: (server: PerfServer) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'aggregator-fanout-'));
  const server = await startServer({ STORE: 'sqlite', DB_PATH: join(dir, 'aggregator.db'), MAX_SUBSCRIBERS: '100000' });
  try {
    return await run(server);
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** N subscribers on `subscribeUrl` while batches are published through `publishUrl` (the same server, or another replica). */
async function fanout(count: number, batches: number, subscribeUrl: string, publishUrl: string) {
  const alone = await publishBatches(publishUrl, batches);
  const probe = await probeThread(subscribeUrl);
  const counted = await countingThread(subscribeUrl, count);
  await until(async () => (await subscribers(subscribeUrl)) === count + 1, 'every subscriber to be connected');
  const pagesBefore = await catchUpPages(subscribeUrl);
  const started = performance.now();
  const published = await publishBatches(publishUrl, batches);
  const expected = count * batches * BATCH;
  await until(() => counted.events() >= expected && probe.events() >= batches * BATCH, `${expected} deliveries`, 300_000);
  const seconds = (performance.now() - started) / 1000;
  const pages = await catchUpPages(subscribeUrl);
  const arrivals = await probe.arrivals();
  const latencies = [...published.acked].map(([id, ackedAt]) => arrivals.get(id)! - ackedAt).sort((a, b) => a - b);
  await probe.stop();
  await counted.stop();
  return {
    subscribers: count,
    'publish ev/s alone': Math.round(alone.eventsPerSecond),
    'publish ev/s with subs': Math.round(published.eventsPerSecond),
    '× alone': +(published.eventsPerSecond / alone.eventsPerSecond).toFixed(2),
    'deliveries/s': Math.round(counted.events() / seconds),
    'commit→sub p50 ms': +percentile(latencies, 0.5).toFixed(1),
    'commit→sub p99 ms': +percentile(latencies, 0.99).toFixed(1),
    // Pages of subscribers that fell behind the shared feed: read from the store, or taken from another's read.
    'catch-up pages read/shared': `${pages.store - pagesBefore.store}/${pages.shared - pagesBefore.shared}`,
  };
}

async function stalled(count: number, events: number) {
  return withServer(async (server) => {
    const open: ClientRequest[] = [];
    for (let i = 0; i < count; i++) open.push(await stalledSubscriber(server.url));
    const before = server.rssBytes();
    const { eventsPerSecond } = await publishBatches(server.url, Math.ceil(events / BATCH));
    const after = server.rssBytes();
    for (const req of open) req.destroy();
    return {
      'stalled subscribers': count, events, 'publish ev/s': Math.round(eventsPerSecond),
      'RSS before MiB': +(before / 2 ** 20).toFixed(1), 'RSS after MiB': +(after / 2 ** 20).toFixed(1),
      'growth MiB': +((after - before) / 2 ** 20).toFixed(1),
    };
  });
}

/** One subscriber from after=0 over `events` stored events (committed straight into the store first). */
async function catchUp(events: number) {
  const dir = mkdtempSync(join(tmpdir(), 'aggregator-catch-up-'));
  const target = sqliteTarget(dir);
  try {
    await target.fill('catch-up', events, 'v4');
    const deployment = await target.deploy('catch-up', 1);
    try {
      const counts = { events: 0 };
      const started = performance.now();
      const req = await countingSubscriber(deployment.urls[0]!, counts, '?after=0');
      await until(() => counts.events >= events, `${events} events caught up`, 600_000);
      const seconds = (performance.now() - started) / 1000;
      req.destroy();
      return { 'stored events': events, seconds: +seconds.toFixed(2), 'catch-up events/s': Math.round(events / seconds) };
    } finally {
      await deployment.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Subscribers on replica A, publishing through replica B, on one throwaway PostgreSQL. */
async function acrossReplicas(count: number, batches: number) {
  const cluster = await startCluster();
  try {
    const deployment = await postgresTarget(cluster.url).deploy('fanout', 2);
    try {
      const [a, b] = deployment.urls as [string, string];
      return { store: 'postgres, subscribe on A, publish on B', ...(await fanout(count, batches, a, b)) };
    } finally {
      await deployment.stop();
    }
  } finally {
    await cluster.remove();
  }
}

if (!isMainThread) await runSubscriberThread(workerData as SubscriberWork);
else await measure();

async function measure(): Promise<void> {
  const MAX_DELIVERIES = 3_000_000;
  const batchesFor = (count: number) => Math.max(10, Math.min(Number(values.batches), Math.floor(MAX_DELIVERIES / (count * BATCH))));
  for (const count of values.subscribers!.split(',').filter(Boolean).map(Number)) {
    console.table([await withServer(async (server) => ({
      store: 'sqlite', batches: batchesFor(count), ...(await fanout(count, batchesFor(count), server.url, server.url)),
    }))]);
  }
  const across = Number(values['replicas-subscribers']);
  if (across > 0) console.table([await acrossReplicas(across, batchesFor(across))]);
  if (Number(values.stalled) > 0) {
    // The same publish with none first: the same-run baseline the stalled ones' publish rate is held to.
    const [alone, withStalled] = [await stalled(0, Number(values['stalled-events'])), await stalled(Number(values.stalled), Number(values['stalled-events']))];
    console.table([alone, { ...withStalled, '× publish alone': +(withStalled['publish ev/s'] / alone['publish ev/s']).toFixed(2) }]);
  }
  if (Number(values['catch-up']) > 0) console.table([await catchUp(Number(values['catch-up']))]);
}
