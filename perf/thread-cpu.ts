import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CEILING, startServer, type PerfServer } from './server.js';
import { cpuSince, threadCpu } from './thread-times.js';

/*
 * node dist/perf/thread-cpu.js [--connections 1,10,64] [--requests 20000]: where the CPU of one
 * single-event publish goes, thread by thread, for the aggregator (SQLite) and the in-memory ceiling. A
 * minimal keep-alive client (raw sockets, one request in flight per connection, fixed bodies) keeps the
 * load generator's own cost small, so the server's share shows; each server thread's CPU time (Linux
 * /proc/<pid>/task) is read before and after, and divided by the requests. A warm-up round runs first.
 */

const { values: options } = parseArgs({
  options: { connections: { type: 'string', default: '1,10,64' }, requests: { type: 'string', default: '20000' } },
});
const connectionCounts = options.connections.split(',').map(Number);
const requests = Number(options.requests);
let sent = 0;
function request(): string {
  const n = sent++;
  const body = JSON.stringify({ topic: `t${n % 16}`, event_id: `e-${n}`, timestamp: '2026-11-27T00:00:00Z', source: 'perf', payload: { n } });
  return `POST /publish HTTP/1.1\r\nhost: perf\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** Sends `total` publishes over `connections` keep-alive connections, one in flight each; resolves with the seconds taken. */
async function drive(port: number, connections: number, total: number): Promise<number> {
  let issued = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: connections }, () => new Promise<void>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    let pending = '';
    const next = () => {
      if (issued >= total) return void socket.end(resolve);
      issued++;
      socket.write(request());
    };
    // Each answer is complete once its headers and Content-Length bytes (or the last chunk) are in.
    socket.on('data', (chunk) => {
      pending += chunk.toString('latin1');
      const head = pending.indexOf('\r\n\r\n');
      if (head < 0) return;
      const length = /content-length: (\d+)/i.exec(pending.slice(0, head));
      const end = length ? head + 4 + Number(length[1]) : pending.indexOf('\r\n0\r\n\r\n', head) + 7;
      if ((length && pending.length < end) || end < 7) return;
      if (!pending.startsWith('HTTP/1.1 200')) return reject(new Error(pending.slice(0, pending.indexOf('\r\n'))));
      pending = pending.slice(end);
      next();
    });
    socket.on('error', reject);
    socket.on('connect', next);
  })));
  return (performance.now() - started) / 1000;
}

async function measure(name: string, server: PerfServer): Promise<void> {
  const port = Number(new URL(server.url).port);
  await drive(port, Math.max(...connectionCounts), Math.min(requests, 5_000));
  for (const connections of connectionCounts) {
    const before = threadCpu(server.pid);
    const client = process.cpuUsage();
    const seconds = await drive(port, connections, requests);
    const clientUs = process.cpuUsage(client);
    const { main, busiest, rest } = cpuSince(server.pid, before);
    const perRequest = (us: number) => (us / requests).toFixed(1);
    console.log(`${name.padEnd(10)} ${String(connections).padStart(3)} conn: ${Math.round(requests / seconds).toLocaleString('en').padStart(7)} req/s | µs CPU per request: ` +
      `HTTP thread ${perRequest(main)}, busiest other thread ${perRequest(busiest)}, the rest ${perRequest(rest)}; ` +
      `client ${perRequest(clientUs.user + clientUs.system)}`);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'aggregator-thread-cpu-'));
try {
  for (const [name, start] of [
    ['aggregator', () => startServer({ STORE: 'sqlite', DB_PATH: join(dir, 'thread-cpu.db') })],
    ['ceiling', () => startServer({}, { entry: CEILING })],
  ] as const) {
    const server = await start();
    try {
      await measure(name, server);
    } finally {
      await server.stop();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
