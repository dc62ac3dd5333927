import { Agent, request } from 'node:http';
import { createGunzip } from 'node:zlib';
import Database from 'better-sqlite3';
import pg from 'pg';
import { jsonArrayWithin } from '../src/store/json-array.js';
import { COLUMNS, items, type Row } from '../src/store/sqlite/sqlite-page.js';
import { round } from './load.js';
import { startServer, type PerfServer } from './server.js';
import { printTargets, type TargetRow } from './store-probe.js';
import { cpuSince, threadCpu } from './thread-times.js';

/*
 * `read` (issue 21): how fast each reader path serves a store from seq 0, against the write rate that filled
 * it and the store's own raw scan of the same rows, all in one run. The store is filled over HTTP (4
 * publishers of batches of 1,000, 10 topics, items of about 350 bytes), which times the write rate. Then,
 * from seq 0: the raw scan (SQLite: better-sqlite3 `SELECT … WHERE seq > ? ORDER BY seq LIMIT 10000`
 * building the same JSON as /events; PostgreSQL: the same rows over one pg connection), the SSE stream,
 * `/events` paging by topic and over every topic, a durable consumer's pull + commit, the stream again with
 * `Accept-Encoding: gzip` (bytes on the wire), and the raw scan once more (the ceiling is their mean, so a
 * change of the machine's load during the run shows in both). For each path, the server's CPU per event
 * by thread (HTTP thread, the busiest other thread, the rest) and the client's.
 */

const PUBLISHERS = 4;
const BATCH = 1_000;
const TOPICS = 10;
const PAGE = 10_000;
/** Pads each payload so that an /events item is about 350 bytes. */
const PADDING = 'x'.repeat(120);
const FRAME_MARK = Buffer.from('\nevent: event\n');
const ITEM_MARK = Buffer.from('{"seq":');
const NEXT_MARK = Buffer.from('"next":');

const agent = new Agent({ keepAlive: true, maxSockets: PUBLISHERS });

/** One HTTP exchange on the keep-alive agent; the whole answer as a buffer. */
function exchange(url: string, method: string, body?: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent, headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk)).on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject).end(body);
  });
}

async function ok(url: string, method: string, body?: string): Promise<Buffer> {
  const res = await exchange(url, method, body);
  if (res.status >= 300) throw new Error(`${method} ${url} answered ${res.status}: ${res.body.toString().slice(0, 200)}`);
  return res.body;
}

function batchBody(first: number, run: string, timestamp: string): string {
  const events: string[] = [];
  for (let n = first; n < first + BATCH; n++) {
    events.push(`{"topic":"read.topic-${n % TOPICS}","event_id":"${run}-${n}","timestamp":"${timestamp}","source":"perf-read",`
      + `"payload":{"n":${n},"level":"info","message":"user signed in","user":"u-${n}","pad":"${PADDING}"}}`);
  }
  return `[${events.join(',')}]`;
}

/** Publishes `events` over 4 connections in batches of 1,000; events/s. */
async function fill(url: string, events: number): Promise<number> {
  const run = Date.now().toString(36);
  const timestamp = new Date().toISOString();
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: PUBLISHERS }, async () => {
    for (let first = next; first < events; first = next) {
      next += BATCH;
      await ok(`${url}/publish`, 'POST', batchBody(first, run, timestamp));
    }
  }));
  return Math.round(events / ((performance.now() - started) / 1000));
}

function occurrences(bytes: Buffer, mark: Buffer): number {
  let count = 0;
  for (let at = bytes.indexOf(mark); at >= 0; at = bytes.indexOf(mark, at + mark.length)) count++;
  return count;
}

/** The integer after the last `mark` in `bytes`. */
const numberAfterLast = (bytes: Buffer, mark: Buffer): number => parseInt(bytes.subarray(bytes.lastIndexOf(mark) + mark.length, bytes.lastIndexOf(mark) + mark.length + 20).toString(), 10);

/** A stream from after=0 read until `events` events came; its wire bytes (compressed, if the server compressed). */
function stream(url: string, events: number, gzip: boolean): Promise<{ wireBytes: number; encoding: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/events/stream?after=0`, { headers: { accept: 'text/event-stream', ...(gzip && { 'accept-encoding': 'gzip' }) } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`/events/stream answered ${res.statusCode}`));
      const encoding = res.headers['content-encoding'] ?? 'identity';
      let wireBytes = 0;
      let counted = 0;
      let tail: Buffer = Buffer.alloc(0);
      res.on('data', (chunk: Buffer) => (wireBytes += chunk.length));
      const body = encoding === 'gzip' ? res.pipe(createGunzip()) : res;
      body.on('data', (chunk: Buffer) => {
        // A frame marker may straddle two chunks: search the previous chunk's tail too, counting each once.
        const text: Buffer = tail.length ? Buffer.concat([tail, chunk]) : chunk;
        for (let at = text.indexOf(FRAME_MARK); at >= 0; at = text.indexOf(FRAME_MARK, at + 1)) if (at + FRAME_MARK.length > tail.length) counted++;
        tail = text.subarray(Math.max(0, text.length - FRAME_MARK.length + 1));
        if (counted >= events) {
          req.destroy();
          resolve({ wireBytes, encoding });
        }
      });
      body.on('error', reject);
    });
    req.on('error', (error) => (req.destroyed ? undefined : reject(error))).end();
  });
}

/** Pages `/events?<query>after=…&limit=10000` to the end; the events read. */
async function paging(url: string, query: string): Promise<number> {
  let total = 0;
  for (let after = 0; ;) {
    const page = await ok(`${url}/events?${query}after=${after}&limit=${PAGE}`, 'GET');
    const count = occurrences(page, ITEM_MARK);
    if (count === 0) return total;
    total += count;
    after = numberAfterLast(page, ITEM_MARK);
  }
}

/** A durable consumer from the earliest event: pull a page, commit its `next`, until a page is empty. */
async function consume(url: string): Promise<number> {
  const name = `read-${Date.now().toString(36)}`;
  await ok(`${url}/consumers/${name}`, 'PUT', JSON.stringify({ start: 'earliest' }));
  let total = 0;
  for (;;) {
    const page = await ok(`${url}/consumers/${name}/events?limit=${PAGE}`, 'GET');
    const count = occurrences(page, ITEM_MARK);
    if (count === 0) return total;
    total += count;
    await ok(`${url}/consumers/${name}/commit`, 'POST', JSON.stringify({ seq: numberAfterLast(page, NEXT_MARK) }));
  }
}

/** The raw scan of a SQLite store: the same query and JSON builder as /events, on this thread. */
function sqliteScan(path: string): number {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const page = db.prepare<[number, number], Row>(`SELECT ${COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?`);
    let total = 0;
    for (let after = 0; ;) {
      let last = after;
      const rows = (function* () {
        for (const row of page.iterate(after, PAGE)) {
          last = row.seq;
          yield row;
        }
      })();
      const { count } = jsonArrayWithin(items(rows), Infinity);
      if (count === 0) return total;
      total += count;
      after = last;
    }
  } finally {
    db.close();
  }
}

/** The raw scan of a PostgreSQL store over one connection: the retained rows by seq, each doc with its seq as the /events item. */
async function postgresScan(url: string): Promise<number> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    let total = 0;
    for (let after = 0; ;) {
      const { rows } = await client.query<{ seq: string; doc: string }>(
        'SELECT seq, doc FROM events WHERE seq > $1 AND doc IS NOT NULL ORDER BY seq LIMIT $2', [after, PAGE]);
      if (rows.length === 0) return total;
      Buffer.from(`[${rows.map((row) => `{"seq":${row.seq},${row.doc.slice(1)}`).join(',')}]`);
      total += rows.length;
      after = Number(rows.at(-1)!.seq);
    }
  } finally {
    await client.end();
  }
}

interface PathResult {
  path: string;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  /** Server CPU µs per event: HTTP thread, busiest other thread, the rest; and the client's (this process). */
  cpuUsPerEvent: { http: number; busiest: number; rest: number; client: number };
  wireBytesPerEvent?: number;
  encoding?: string;
}

/** Times `read` (which returns the events it read) and the CPU it cost, by thread. */
async function timed(path: string, server: PerfServer | undefined, read: () => Promise<number | { events: number; wireBytes: number; encoding: string }>): Promise<PathResult> {
  process.stdout.write(`  ${path} … `);
  const before = server && threadCpu(server.pid);
  const client = process.cpuUsage();
  const started = performance.now();
  const outcome = await read();
  const seconds = (performance.now() - started) / 1000;
  const clientUs = process.cpuUsage(client);
  const events = typeof outcome === 'number' ? outcome : outcome.events;
  const used = server ? cpuSince(server.pid, before!) : { main: 0, busiest: 0, rest: 0 };
  const per = (us: number) => round(us / events, 2);
  const result: PathResult = {
    path, events, seconds: round(seconds, 2), eventsPerSecond: Math.round(events / seconds),
    cpuUsPerEvent: { http: per(used.main), busiest: per(used.busiest), rest: per(used.rest), client: per(clientUs.user + clientUs.system) },
    ...(typeof outcome === 'object' && { wireBytesPerEvent: round(outcome.wireBytes / events, 1), encoding: outcome.encoding }),
  };
  console.log(`${result.eventsPerSecond.toLocaleString('en')} events/s`);
  return result;
}

export interface ReadTarget {
  store: 'sqlite' | 'postgres';
  /** Starts the server on a fresh store. */
  start(): Promise<PerfServer>;
  /** The store's raw scan of every stored row; the rows read. */
  scan(): Promise<number>;
}

export const sqliteReadTarget = (path: string): ReadTarget => ({
  store: 'sqlite',
  start: () => startServer({ STORE: 'sqlite', DB_PATH: path }),
  scan: async () => sqliteScan(path),
});

export const postgresReadTarget = (databaseUrl: string): ReadTarget => ({
  store: 'postgres',
  start: () => startServer({ STORE: 'postgres', DATABASE_URL: databaseUrl, REPLICA_ID: 'perf-read' }),
  scan: () => postgresScan(databaseUrl),
});

/** `only`: the paths whose names start with one of these (all by default), for a quick look at one. */
export async function runRead(target: ReadTarget, events: number, only?: string[]) {
  const server = await target.start();
  try {
    console.log(`\nread (${target.store}): filling ${events.toLocaleString('en')} events over HTTP, ${PUBLISHERS} publishers of batches of ${BATCH} …`);
    const writeRate = await fill(server.url, events);
    console.log(`  write rate ${writeRate.toLocaleString('en')} events/s`);
    const check = (path: string, read: number) => {
      if (read !== events) throw new Error(`${path} read ${read} events of ${events}`);
      return read;
    };
    const scanBefore = await timed('raw scan', undefined, async () => check('raw scan', await target.scan()));
    const runs: [string, () => Promise<number | { events: number; wireBytes: number; encoding: string }>][] = [
      ['stream', async () => ({ events, ...(await stream(server.url, events, false)) })],
      ['/events?topic= paging', async () => {
        let read = 0;
        for (let t = 0; t < TOPICS; t++) read += await paging(server.url, `topic=read.topic-${t}&`);
        return check('paging', read);
      }],
      ['/events paging, every topic', async () => check('paging', await paging(server.url, ''))],
      ['consumer pull + commit', async () => check('consumer', await consume(server.url))],
      ['stream, Accept-Encoding: gzip', async () => ({ events, ...(await stream(server.url, events, true)) })],
    ];
    const paths: PathResult[] = [];
    for (const [path, read] of runs) if (only === undefined || only.some((name) => path.startsWith(name))) paths.push(await timed(path, server, read));
    const scanAfter = await timed('raw scan', undefined, async () => check('raw scan', await target.scan()));
    const raw = Math.round((scanBefore.eventsPerSecond + scanAfter.eventsPerSecond) / 2);
    const rows = [scanBefore, ...paths, scanAfter].map((r) => ({
      path: r.path, 'events/s': r.eventsPerSecond, '× write rate': round(r.eventsPerSecond / writeRate, 2), '× raw': round(r.eventsPerSecond / raw, 2),
      's': r.seconds, 'µs/event HTTP thread': r.cpuUsPerEvent.http, 'busiest other': r.cpuUsPerEvent.busiest, 'rest': r.cpuUsPerEvent.rest,
      'client': r.cpuUsPerEvent.client, 'wire B/event': r.wireBytesPerEvent ?? '',
    }));
    console.table(rows);
    const find = (name: string) => paths.find((p) => p.path === name);
    const [stream1, byTopic, consumer, gzip] = [find('stream'), find('/events?topic= paging'), find('consumer pull + commit'), find('stream, Accept-Encoding: gzip')];
    const minRaw = target.store === 'sqlite' ? 0.6 : 0.5;
    const row = (measure: string, measured: number | undefined, target: number, unit = '') =>
      ({ measure, measured: measured === undefined ? 'not run' : `${round(measured, 2)}${unit}`, target: `≥ ${target}${unit}`, met: measured === undefined ? '—' as const : measured >= target });
    const targets: TargetRow[] = [
      row('stream catch-up × write rate', stream1 && stream1.eventsPerSecond / writeRate, 1.5),
      row('stream catch-up × raw scan', stream1 && stream1.eventsPerSecond / raw, 0.5),
      row('/events?topic= paging × raw scan', byTopic && byTopic.eventsPerSecond / raw, minRaw),
      row('consumer pull + commit × raw scan', consumer && consumer.eventsPerSecond / raw, minRaw),
      row(`gzip stream: wire bytes per event ${stream1?.wireBytesPerEvent} → ${gzip?.wireBytesPerEvent} (${gzip?.encoding})`,
        stream1 && gzip && stream1.wireBytesPerEvent! / gzip.wireBytesPerEvent!, 4, ' × fewer'),
      row('gzip stream catch-up × uncompressed', stream1 && gzip && gzip.eventsPerSecond / stream1.eventsPerSecond, 0.7),
    ];
    printTargets(`read (${target.store}): ${events.toLocaleString('en')} events written at ${writeRate.toLocaleString('en')} events/s, raw scan ${raw.toLocaleString('en')} events/s`, targets);
    return { store: target.store, events, writeRate, rawScan: raw, paths: [scanBefore, ...paths, scanAfter], targets };
  } finally {
    agent.destroy();
    await server.stop();
  }
}
