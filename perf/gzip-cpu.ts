import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createGunzip } from 'node:zlib';
import { SseParser } from '../src/clients/sse-parser.js';
import { logLine } from './log-lines.js';
import { startServer } from './server.js';

/*
 * node dist/perf/gzip-cpu.js [--events 100000]: what `Accept-Encoding: gzip` costs a reader, per event, on
 * a fresh SQLite store of request log lines (perf/log-lines.ts). Each read path runs from seq 0 to the end,
 * once uncompressed and once gzipped, by a client that decodes what it gets: the server process's CPU
 * (every thread, zlib's included; Linux /proc) and the client's are divided by the events read. Then the
 * server's RSS per idle open stream, uncompressed and gzipped.
 */

const { values: options } = parseArgs({ options: { events: { type: 'string', default: '100000' } } });
const total = Number(options.events);
const TICK_US = 10_000;

const processCpuUs = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_US;
};
const clientCpuUs = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

/** A GET: the decoded body handed to `onText` as it arrives, and the bytes that came over the wire. */
function get(url: string, encoding: string, onText: (text: string) => boolean, method = 'GET'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { 'accept-encoding': encoding } }, (res: IncomingMessage) => {
      let wire = 0;
      res.on('data', (chunk: Buffer) => (wire += chunk.length));
      const body = res.headers['content-encoding'] === 'gzip' ? res.pipe(createGunzip()) : res;
      body.setEncoding('utf8');
      body.on('data', (text: string) => {
        if (onText(text)) {
          req.destroy();
          resolve(wire);
        }
      });
      body.on('end', () => resolve(wire));
      body.on('error', reject);
    });
    req.on('error', (error) => (req.destroyed ? undefined : reject(error)));
    req.end();
  });
}

const json = async (url: string, encoding: string) => {
  let text = '';
  const wire = await get(url, encoding, (chunk) => {
    text += chunk;
    return false;
  });
  return { body: JSON.parse(text), wire };
};

/** Every event of the stream from after=0, parsed as a subscriber would. */
async function streamAll(url: string, encoding: string): Promise<number> {
  const parser = new SseParser();
  let seen = 0;
  return get(`${url}/events/stream?after=0`, encoding, (text) => {
    for (const message of parser.feed(text)) if (message.event === 'event') seen++;
    return seen >= total;
  });
}

async function pageAll(url: string, encoding: string): Promise<number> {
  let wire = 0;
  for (let after = 0; ;) {
    const page = await json(`${url}/events?after=${after}&limit=10000`, encoding);
    wire += page.wire;
    if (page.body.length === 0) return wire;
    after = page.body.at(-1).seq;
  }
}

async function consumeAll(url: string, encoding: string): Promise<number> {
  const consumer = `${url}/consumers/${encoding}`;
  await fetch(consumer, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ start: 'earliest' }) });
  let wire = 0;
  for (;;) {
    const page = await json(`${consumer}/events?limit=10000`, encoding);
    wire += page.wire;
    if (page.body.events.length === 0) return wire;
    await fetch(`${consumer}/commit`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ seq: page.body.next }) });
  }
}

const dir = mkdtempSync(join(tmpdir(), 'gzip-cpu-'));
const server = await startServer({ DB_PATH: join(dir, 'aggregator.db') });
try {
  for (let n = 0; n < total; n += 1_000) {
    const batch = Array.from({ length: Math.min(1_000, total - n) }, (_, i) => logLine(n + i));
    const res = await fetch(`${server.url}/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch) });
    if (!res.ok) throw new Error(`publish answered ${res.status}`);
  }
  while ((await (await fetch(`${server.url}/stats`)).json() as { unique_processed: number }).unique_processed < total) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  console.log(`${total} log lines stored; each path read from seq 0 to the end by a decoding client`);
  console.log('path | encoding | events/s | server CPU µs/event | client CPU µs/event | wire bytes/event');
  const paths = { stream: streamAll, '/events paging': pageAll, 'consumer pull + commit': consumeAll };
  for (const [name, read] of Object.entries(paths)) {
    for (const encoding of ['identity', 'gzip']) {
      const [server0, client0, started] = [processCpuUs(server.pid), clientCpuUs(), performance.now()];
      const wire = await read(server.url, encoding);
      const seconds = (performance.now() - started) / 1_000;
      const perEvent = (us: number) => (us / total).toFixed(1);
      console.log(`${name} | ${encoding} | ${Math.round(total / seconds)} | ${perEvent(processCpuUs(server.pid) - server0)} | `
        + `${perEvent(clientCpuUs() - client0)} | ${(wire / total).toFixed(0)}`);
    }
  }
  // What an open stream holds with and without gzip: the compressor's state stays while the stream is open.
  const STREAMS = 200;
  for (const encoding of ['identity', 'gzip']) {
    const before = server.rssBytes();
    const open = await Promise.all(Array.from({ length: STREAMS }, () => new Promise<ClientRequest>((resolve) => {
      const req = request(`${server.url}/events/stream`, { headers: { 'accept-encoding': encoding } }, () => resolve(req));
      req.end();
    })));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    console.log(`${STREAMS} idle streams, ${encoding}: RSS +${((server.rssBytes() - before) / STREAMS / 1024).toFixed(0)} KiB each`);
    for (const req of open) req.destroy();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
