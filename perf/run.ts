/*
 * npm run perf [-- scenario … | --all] [--docs]: for each scenario, starts the real server as a child
 * process on a fresh temporary database, drives it over loopback with autocannon (latency from its HDR
 * histogram), checks /stats against exactly what was sent, and prints events/s and latency beside a
 * same-run `store` baseline: SqliteEventStore alone, same schema and batch size, no HTTP, no ring.
 * Writes perf/results/<time>.json and .svg (and docs/perf-results.json, docs/perf-chart.svg with --docs).
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import autocannon from 'autocannon';
import type { IncomingEvent } from '../src/event.js';
import { EventSource, type IdKind } from '../src/publisher/event-source.js';
import { SqliteEventStore } from '../src/store/sqlite-store.js';
import { renderChart } from './chart.js';
import { startServer } from './server.js';
import { DUPLICATE_RATIO, SCENARIOS, type Scenario } from './scenarios.js';
import type { ProbeResult } from './stats-probe.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BASELINE_EVENTS = 300_000;
const BATCH = 1_000;

const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;
const percentile = (sorted: number[], q: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0, 2);

/** Request bodies, generated before the clock starts, and the exact unique/duplicate split they carry. */
function makeBodies(scenario: Scenario) {
  const source = new EventSource({ duplicateRatio: DUPLICATE_RATIO, topics: 16, idKind: scenario.idKind, source: 'perf' });
  const bodies = Array.from({ length: scenario.requests }, () =>
    JSON.stringify(scenario.eventsPerRequest === 1 ? source.next() : source.batch(scenario.eventsPerRequest)),
  );
  return { bodies, unique: source.uniqueCount, duplicates: source.duplicateCount };
}

function storeEvents(count: number, idKind: IdKind): IncomingEvent[][] {
  const source = new EventSource({ duplicateRatio: 0, topics: 16, idKind, source: 'perf' });
  const receivedAt = new Date().toISOString();
  return Array.from({ length: count / BATCH }, () =>
    source.batch(BATCH).map((e) => ({
      topic: e.topic, eventId: e.event_id, timestamp: e.timestamp, source: e.source, payload: JSON.stringify(e.payload), receivedAt,
    })),
  );
}

/** Commits `count` events straight into a store at `path`; returns events/s. */
function fillStore(path: string, count: number, idKind: IdKind, onProgress?: (done: number) => void): number {
  const store = new SqliteEventStore(path, { synchronous: 'normal', maxBytes: 0 });
  let elapsed = 0;
  // Generate in slices so memory stays flat while prefilling millions.
  for (let done = 0; done < count; done += 100_000) {
    const batches = storeEvents(Math.min(100_000, count - done), idKind);
    const started = performance.now();
    batches.forEach((batch, i) => store.commitBatch(batch, { epoch: 'perf', position: done + i }));
    elapsed += performance.now() - started;
    onProgress?.(done + 100_000);
  }
  store.close();
  return Math.round(count / (elapsed / 1000));
}

function probeStats(url: string, events: number): Promise<ProbeResult> {
  const worker = new Worker(new URL('./stats-probe.js', import.meta.url), { workerData: { url, events } });
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

async function runScenario(scenario: Scenario, dir: string) {
  const { bodies, unique, duplicates } = makeBodies(scenario);
  const dbPath = join(dir, `${scenario.name}.db`);
  if (scenario.prefill) {
    const rate = fillStore(dbPath, scenario.prefill, scenario.idKind, (done) => {
      if (process.stdout.isTTY) process.stdout.write(`\r  pre-filling ${done.toLocaleString('en')} / ${scenario.prefill!.toLocaleString('en')}   `);
    });
    process.stdout.write(`(${rate}/s) `);
  }
  const server = await startServer(dbPath);
  try {
    const base = (await (await fetch(`${server.url}/stats`)).json()) as ProbeResult['final'];
    const events = scenario.requests * scenario.eventsPerRequest;
    const statusCodes: Record<string, number> = {};
    let next = 0;
    const started = performance.timeOrigin + performance.now();
    const settled = probeStats(server.url, base.received + events);
    const readers = scenario.readers
      ? autocannon({
          url: server.url, connections: 2, duration: 600,
          requests: [{ method: 'GET', path: '/events?limit=100' }, { method: 'GET', path: '/stats' }],
        })
      : undefined;
    const progress = setInterval(() => {
      if (process.stdout.isTTY) process.stdout.write(`\r  ${scenario.name}: ${next} / ${bodies.length} requests`);
    }, 250);
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
    clearInterval(progress);
    const probe = await settled;
    if (readers) (readers as unknown as { stop: () => void }).stop();
    const reads = readers && (await readers);
    const seconds = (probe.settledAt - started) / 1000;
    const stats = probe.latenciesMs.sort((a, b) => a - b);
    const observed = {
      unique: probe.final.unique_processed - base.unique_processed,
      duplicates: probe.final.duplicate_dropped - base.duplicate_dropped,
    };
    return {
      scenario: scenario.name,
      description: scenario.description,
      events,
      seconds: round(seconds),
      eventsPerSecond: Math.round(events / seconds),
      uniquePerSecond: Math.round(unique / seconds),
      requestsPerSecond: Math.round(scenario.requests / seconds),
      latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
      statsLatencyMs: { p50: percentile(stats, 0.5), p99: percentile(stats, 0.99), samples: stats.length },
      ...(reads && { readLatencyMs: { p50: reads.latency.p50, p99: reads.latency.p99, requests: reads.requests.total } }),
      statusCodes,
      errors: result.errors + result.timeouts,
      expected: { unique, duplicates },
      observed,
      correct: observed.unique === unique && observed.duplicates === duplicates,
    };
  } finally {
    await server.stop();
  }
}

const args = process.argv.slice(2);
const named = args.filter((a) => !a.startsWith('-'));
const unknown = named.filter((n) => !SCENARIOS.some((s) => s.name === n));
if (unknown.length) {
  console.error(`unknown scenario ${unknown.join(', ')}; choose from: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  process.exit(2);
}
const chosen = SCENARIOS.filter((s) => (named.length ? named.includes(s.name) : args.includes('--all') || !s.optIn));

const dir = mkdtempSync(join(tmpdir(), 'aggregator-perf-'));
try {
  process.stdout.write(`store baseline (${BASELINE_EVENTS.toLocaleString('en')} random-id events, batches of ${BATCH}) … `);
  const baseline = { events: BASELINE_EVENTS, batchSize: BATCH, eventsPerSecond: fillStore(join(dir, 'baseline.db'), BASELINE_EVENTS, 'v4') };
  console.log(`${baseline.eventsPerSecond.toLocaleString('en')} events/s`);
  const results = [];
  for (const scenario of chosen) {
    const result = await runScenario(scenario, dir);
    console.log(`${process.stdout.isTTY ? '\r' : ''}  ${scenario.name}: ${result.seconds} s${' '.repeat(30)}`);
    results.push({ ...result, ratioToStore: round(result.uniquePerSecond / baseline.eventsPerSecond, 2) });
  }
  console.table(results.map((r) => ({
    scenario: r.scenario, s: r.seconds, 'events/s': r.eventsPerSecond, 'unique/s': r.uniquePerSecond, 'req/s': r.requestsPerSecond,
    'p50 ms': r.latencyMs.p50, 'p99 ms': r.latencyMs.p99, 'max ms': r.latencyMs.max, '/stats p99': r.statsLatencyMs.p99,
    '× store': r.ratioToStore, correct: r.correct, codes: JSON.stringify(r.statusCodes),
  })));
  for (const r of results) if ('readLatencyMs' in r) console.log(`${r.scenario}: reads p50 ${r.readLatencyMs!.p50} ms, p99 ${r.readLatencyMs!.p99} ms`);

  const machine = { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, memoryGiB: round(totalmem() / 2 ** 30, 1) };
  const stamp = new Date().toISOString();
  const resultsDir = join(ROOT, 'perf', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const base = join(resultsDir, stamp.replace(/[:.]/g, '-'));
  writeFileSync(`${base}.json`, JSON.stringify({ stamp, machine, duplicateRatio: DUPLICATE_RATIO, baseline, results }, null, 2));
  writeFileSync(`${base}.svg`, renderChart(results, baseline.eventsPerSecond, `pubsub-aggregator, ${stamp.slice(0, 10)}, ${machine.cpus} cores, ${machine.node}`));
  console.log(`written ${base}.json and .svg`);
  if (args.includes('--docs')) {
    copyFileSync(`${base}.json`, join(ROOT, 'docs', 'perf-results.json'));
    copyFileSync(`${base}.svg`, join(ROOT, 'docs', 'perf-chart.svg'));
    console.log('copied to docs/perf-results.json and docs/perf-chart.svg');
  }
  if (results.some((r) => !r.correct || r.errors > 0)) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
