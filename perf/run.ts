/*
 * npm run perf [-- scenario ...]: starts the real server as a child process on a temporary database for
 * each scenario, drives it over loopback with autocannon, checks /stats against what was sent, and
 * prints events/s and latency percentiles beside a same-run `store` baseline (SqliteEventStore alone, no
 * HTTP, no ring). Results also go to perf/results/<time>.json.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { SqliteEventStore } from '../src/store/sqlite-store.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const RESULTS = fileURLToPath(new URL('../../perf/results/', import.meta.url));
const DUPLICATE_SHARE = 0.2;

interface Scenario {
  name: string;
  description: string;
  requests: number;
  eventsPerRequest: number;
  connections: number;
  query?: string;
}

const SCENARIOS: Scenario[] = [
  { name: 'seed', description: '5,000 single-event POSTs, 10 connections', requests: 5_000, eventsPerRequest: 1, connections: 10 },
  { name: 'seed-batch', description: '5,000 events in batches of 100, 10 connections', requests: 50, eventsPerRequest: 100, connections: 10 },
  { name: 'single', description: 'single-event POSTs, 64 connections', requests: 40_000, eventsPerRequest: 1, connections: 64 },
  { name: 'batch1000', description: 'batches of 1,000, 4 connections', requests: 300, eventsPerRequest: 1_000, connections: 4 },
  { name: 'queued', description: 'batches of 100 with ?ack=queued, 8 connections', requests: 2_000, eventsPerRequest: 100, connections: 8, query: '?ack=queued' },
];

interface Event {
  topic: string;
  event_id: string;
  timestamp: string;
  source: string;
  payload: Record<string, unknown>;
}

/** Request bodies with DUPLICATE_SHARE of the events re-sending an earlier one, and the unique count. */
function makeBodies(scenario: Scenario): { bodies: string[]; unique: number } {
  const sent: Event[] = [];
  let unique = 0;
  const bodies = Array.from({ length: scenario.requests }, () => {
    const batch = Array.from({ length: scenario.eventsPerRequest }, () => {
      if (sent.length > 0 && Math.random() < DUPLICATE_SHARE) return sent[Math.floor(Math.random() * sent.length)]!;
      unique++;
      const event: Event = {
        topic: `perf.topic-${unique % 16}`, event_id: randomUUID(), timestamp: new Date().toISOString(),
        source: 'perf', payload: { n: unique, level: 'info', message: 'user signed in', user: randomUUID() },
      };
      sent.push(event);
      return event;
    });
    return JSON.stringify(batch.length === 1 ? batch[0] : batch);
  });
  return { bodies, unique };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function startServer(dbPath: string) {
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN, '--port', String(port), '--host', '127.0.0.1', '--db-path', dbPath], {
    env: { ...process.env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let tries = 0; ; tries++) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch {
      if (tries > 200) throw new Error('the server did not start');
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url, stop: () => new Promise((resolve) => child.once('exit', resolve).kill('SIGTERM')) };
}

async function stats(url: string) {
  return (await (await fetch(`${url}/stats`)).json()) as {
    received: number; unique_processed: number; duplicate_dropped: number; queue_depth: number;
  };
}

/**
 * Polls /stats every 20 ms while the load runs, until all `events` are received and committed. Gives the
 * scenario's end (autocannon's own clock has a one-second resolution) and /stats latency under load.
 */
async function pollUntilSettled(url: string, events: number) {
  const latencies: number[] = [];
  for (;;) {
    const asked = performance.now();
    const final = await stats(url);
    const at = performance.now();
    latencies.push(at - asked);
    if (final.received === events && final.queue_depth === 0 && final.unique_processed + final.duplicate_dropped === events) {
      latencies.sort((a, b) => a - b);
      const pick = (q: number) => round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!);
      return { at, final, statsLatencyMs: { p50: pick(0.5), p99: pick(0.99), samples: latencies.length } };
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function runScenario(scenario: Scenario, dir: string) {
  const { bodies, unique } = makeBodies(scenario);
  const server = await startServer(join(dir, `${scenario.name}.db`));
  try {
    let next = 0;
    const statusCodes: Record<string, number> = {};
    const started = performance.now();
    const events = scenario.requests * scenario.eventsPerRequest;
    const settled = pollUntilSettled(server.url, events);
    const result = await autocannon({
      url: `${server.url}/publish${scenario.query ?? ''}`,
      connections: scenario.connections,
      amount: bodies.length,
      timeout: 60,
      requests: [{
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        setupRequest: (request) => ({ ...request, body: bodies[next++ % bodies.length] }),
        onResponse: (status) => {
          statusCodes[status] = (statusCodes[status] ?? 0) + 1;
        },
      }],
    });
    const { at, final, statsLatencyMs } = await settled;
    const seconds = (at - started) / 1000;
    return {
      scenario: scenario.name,
      description: scenario.description,
      events,
      seconds: round(seconds),
      eventsPerSecond: Math.round(events / seconds),
      uniquePerSecond: Math.round(unique / seconds),
      requestsPerSecond: Math.round(scenario.requests / seconds),
      latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
      statusCodes,
      errors: result.errors + result.timeouts,
      correct: final.unique_processed === unique && final.duplicate_dropped === events - unique,
      expected: { unique, duplicates: events - unique },
      observed: { unique: final.unique_processed, duplicates: final.duplicate_dropped },
      statsLatencyMs,
    };
  } finally {
    await server.stop();
  }
}

/** The physical limit: the same store, schema and batch size, called directly in one thread. */
function storeBaseline(dir: string, batchSize = 1_000, events = 300_000) {
  const store = new SqliteEventStore(join(dir, 'baseline.db'), { synchronous: 'normal', maxBytes: 0 });
  const receivedAt = new Date().toISOString();
  const batches = Array.from({ length: events / batchSize }, (_, b) =>
    Array.from({ length: batchSize }, (_, i) => ({
      topic: `perf.topic-${(b * batchSize + i) % 16}`, eventId: randomUUID(), timestamp: receivedAt, source: 'perf',
      payload: JSON.stringify({ n: b * batchSize + i, level: 'info', message: 'user signed in', user: randomUUID() }),
      receivedAt,
    })),
  );
  const started = performance.now();
  batches.forEach((batch, b) => store.commitBatch(batch, { epoch: 'baseline', position: b }));
  const seconds = (performance.now() - started) / 1000;
  store.close();
  return { events, batchSize, seconds: round(seconds), eventsPerSecond: Math.round(events / seconds) };
}

const round = (n: number) => Math.round(n * 1000) / 1000;

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const chosen = wanted.length ? SCENARIOS.filter((s) => wanted.includes(s.name)) : SCENARIOS;
if (chosen.length !== (wanted.length || SCENARIOS.length)) {
  console.error(`unknown scenario; choose from: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'aggregator-perf-'));
try {
  process.stdout.write('store baseline … ');
  const baseline = storeBaseline(dir);
  console.log(`${baseline.eventsPerSecond} events/s`);
  const results = [];
  for (const scenario of chosen) {
    process.stdout.write(`${scenario.name} (${scenario.description}) … `);
    const result = await runScenario(scenario, dir);
    console.log(`${result.seconds} s`);
    results.push({ ...result, ratioToStore: round(result.uniquePerSecond / baseline.eventsPerSecond) });
  }
  console.table(results.map((r) => ({
    scenario: r.scenario, seconds: r.seconds, 'events/s': r.eventsPerSecond, 'unique/s': r.uniquePerSecond,
    'req/s': r.requestsPerSecond, 'p50 ms': r.latencyMs.p50, 'p90 ms': r.latencyMs.p90, 'p99 ms': r.latencyMs.p99,
    'max ms': r.latencyMs.max, 'stats p99': r.statsLatencyMs.p99, '× store': r.ratioToStore, correct: r.correct, codes: JSON.stringify(r.statusCodes),
  })));
  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const machine = { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model };
  writeFileSync(file, JSON.stringify({ machine, baseline, results }, null, 2));
  console.log(`written ${file}`);
  if (results.some((r) => !r.correct || r.errors > 0)) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
