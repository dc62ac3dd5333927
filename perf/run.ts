/*
 * npm run perf [-- scenario … | --all] [--store sqlite|postgres] [--replicas 1,2] [--docs]: for each
 * scenario, starts the real server (or N replicas on one PostgreSQL database) as child processes on a
 * fresh database, drives them over loopback with autocannon (latency from its HDR histogram), checks the
 * store's counters against exactly what was sent, and prints events/s and latency beside a same-run
 * baseline: the store alone, same schema and batch size, no HTTP, no ring (SqliteEventStore in one
 * process; PostgresEventStore from 4 direct connections). Writes perf/results/<time>-<store>.json and
 * .svg (and docs/perf-results[-postgres].json, docs/perf-chart[-postgres].svg with --docs).
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import autocannon from 'autocannon';
import { EventSource } from '../src/publisher/event-source.js';
import { startCluster } from '../scripts/pg-cluster.js';
import { renderChart } from './chart.js';
import { BATCH, deployCeiling, postgresTarget, sqliteTarget, type Deployment } from './deployments.js';
import { DUPLICATE_RATIO, SCENARIOS, type Scenario } from './scenarios.js';
import type { ProbeResult } from './stats-probe.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BASELINE_EVENTS = 300_000;

const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;
const percentile = (sorted: number[], q: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0, 2);

/** Request bodies, generated before the clock starts, and the exact unique/duplicate split they carry. */
function makeBodies(scenario: Scenario) {
  const source = new EventSource({ duplicateRatio: DUPLICATE_RATIO, topics: 16, idKind: scenario.idKind, source: 'perf' });
  const bodies = Array.from({ length: scenario.requests }, (): string | Buffer => {
    const json = JSON.stringify(scenario.eventsPerRequest === 1 ? source.next() : source.batch(scenario.eventsPerRequest));
    return scenario.gzip ? gzipSync(json) : json;
  });
  return { bodies, unique: source.uniqueCount, duplicates: source.duplicateCount };
}

function probeStats(urls: string[], events: number): Promise<ProbeResult> {
  const worker = new Worker(new URL('./stats-probe.js', import.meta.url), { workerData: { urls, events } });
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

/** Splits n into `parts` near-equal whole shares. */
const shares = (n: number, parts: number) => Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));

/** Runs `scenario` against what `deploy` starts (the aggregator, or the in-memory ceiling). */
async function runScenario(scenario: Scenario, name: string, replicas: number, deploy: () => Promise<Deployment>) {
  const { bodies, unique, duplicates } = makeBodies(scenario);
  const deployment = await deploy();
  try {
    const base = await deployment.counters();
    const events = scenario.requests * scenario.eventsPerRequest;
    const statusCodes: Record<string, number> = {};
    let next = 0;
    const started = performance.timeOrigin + performance.now();
    const settled = probeStats(deployment.urls, events);
    const readers = scenario.readers
      ? autocannon({
          url: deployment.urls[0]!, connections: 2, duration: 600,
          requests: [{ method: 'GET', path: '/events?limit=100' }, { method: 'GET', path: '/stats' }],
        })
      : undefined;
    const progress = setInterval(() => {
      if (process.stdout.isTTY) process.stdout.write(`\r  ${name}: ${next} / ${bodies.length} requests`);
    }, 250);
    // One load generator per replica, as a load balancer would spread the same connections and requests.
    const connections = shares(scenario.connections, replicas);
    const loads = await Promise.all(shares(bodies.length, replicas).map((amount, i) => autocannon({
      url: `${deployment.urls[i]}/publish${scenario.query ?? ''}`,
      connections: Math.max(1, connections[i]!),
      amount,
      timeout: 60,
      requests: [{
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(scenario.gzip ? { 'content-encoding': 'gzip' } : {}) },
        setupRequest: (request) => ({ ...request, body: bodies[next++ % bodies.length] }),
        onResponse: (status) => {
          statusCodes[status] = (statusCodes[status] ?? 0) + 1;
        },
      }],
    })));
    clearInterval(progress);
    const probe = await settled;
    if (readers) (readers as unknown as { stop: () => void }).stop();
    const reads = readers && (await readers);
    const seconds = (probe.settledAt - started) / 1000;
    const stats = probe.latenciesMs.sort((a, b) => a - b);
    const final = await deployment.counters();
    const observed = { unique: final.unique - base.unique, duplicates: final.duplicates - base.duplicates };
    // With several load generators, each percentile is the worst replica's: an upper bound, not a merge.
    const worst = (pick: (latency: autocannon.Histogram) => number) => Math.max(...loads.map((l) => pick(l.latency)));
    return {
      scenario: replicas > 1 ? `${scenario.name} x${replicas}` : scenario.name,
      description: scenario.description,
      replicas,
      events,
      seconds: round(seconds),
      eventsPerSecond: Math.round(events / seconds),
      uniquePerSecond: Math.round(unique / seconds),
      requestsPerSecond: Math.round(scenario.requests / seconds),
      latencyMs: { p50: worst((l) => l.p50), p90: worst((l) => l.p90), p99: worst((l) => l.p99), max: worst((l) => l.max) },
      statsLatencyMs: { p50: percentile(stats, 0.5), p99: percentile(stats, 0.99), samples: stats.length },
      ...(reads && { readLatencyMs: { p50: reads.latency.p50, p99: reads.latency.p99, requests: reads.requests.total } }),
      statusCodes,
      errors: loads.reduce((sum, l) => sum + l.errors + l.timeouts, 0),
      expected: { unique, duplicates },
      observed,
      correct: observed.unique === unique && observed.duplicates === duplicates,
    };
  } finally {
    await deployment.stop();
  }
}

const { values: options, positionals: named } = parseArgs({
  allowPositionals: true,
  options: {
    all: { type: 'boolean', default: false },
    docs: { type: 'boolean', default: false },
    store: { type: 'string', default: 'sqlite' },
    replicas: { type: 'string', default: '1' },
  },
});
const unknown = named.filter((n) => !SCENARIOS.some((s) => s.name === n));
if (unknown.length || !['sqlite', 'postgres'].includes(options.store)) {
  console.error(`usage: npm run perf -- [--store sqlite|postgres] [--replicas 1,2] [--all] [--docs] [scenario …]
scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  process.exit(2);
}
const replicaCounts = options.replicas.split(',').map(Number);
const chosen = SCENARIOS.filter((s) => (named.length ? named.includes(s.name) : options.all || !s.optIn));

const dir = mkdtempSync(join(tmpdir(), 'aggregator-perf-'));
// PostgreSQL runs are on a throwaway cluster of their own (scripts/pg-test-cluster.sh), like the tests'.
const cluster = options.store === 'postgres' ? await startCluster() : undefined;
try {
  const target = cluster ? postgresTarget(cluster.url) : sqliteTarget(dir);
  const how = cluster ? `${BATCH} per commit from 4 direct connections` : `batches of ${BATCH}`;
  process.stdout.write(`${target.store} baseline (${BASELINE_EVENTS.toLocaleString('en')} random-id events, ${how}) … `);
  const baseline = { store: target.store, events: BASELINE_EVENTS, batchSize: BATCH, eventsPerSecond: await target.fill('baseline', BASELINE_EVENTS, 'v4') };
  console.log(`${baseline.eventsPerSecond.toLocaleString('en')} events/s`);
  const results = [];
  for (const replicas of replicaCounts) {
    for (const scenario of chosen) {
      const name = `${scenario.name}-x${replicas}`;
      if (scenario.prefill) {
        const rate = await target.fill(name, scenario.prefill, scenario.idKind, (done) => {
          if (process.stdout.isTTY) process.stdout.write(`\r  pre-filling ${done.toLocaleString('en')} / ${scenario.prefill!.toLocaleString('en')}   `);
        });
        process.stdout.write(`(${rate}/s) `);
      }
      const result = await runScenario(scenario, name, replicas, () => target.deploy(name, replicas));
      // The same bodies and client against plain node:http with a Set: the ceiling of this machine, this run.
      const ceiling = await runScenario(scenario, name, 1, deployCeiling);
      console.log(`${process.stdout.isTTY ? '\r' : ''}  ${result.scenario}: ${result.seconds} s (ceiling ${ceiling.seconds} s)${' '.repeat(30)}`);
      results.push({
        ...result,
        ratioToStore: round(result.uniquePerSecond / baseline.eventsPerSecond, 2),
        ceiling: { eventsPerSecond: ceiling.eventsPerSecond, seconds: ceiling.seconds, latencyMs: ceiling.latencyMs },
        ratioToCeiling: round(result.eventsPerSecond / ceiling.eventsPerSecond, 2),
        p99ToCeiling: round(result.latencyMs.p99 / Math.max(1, ceiling.latencyMs.p99), 2),
      });
    }
  }
  console.table(results.map((r) => ({
    scenario: r.scenario, s: r.seconds, 'events/s': r.eventsPerSecond, 'unique/s': r.uniquePerSecond, 'req/s': r.requestsPerSecond,
    'p50 ms': r.latencyMs.p50, 'p99 ms': r.latencyMs.p99, 'max ms': r.latencyMs.max, '/stats p99': r.statsLatencyMs.p99,
    [`× ${target.store}`]: r.ratioToStore, '× ceiling': r.ratioToCeiling, 'p99 × ceiling': r.p99ToCeiling,
    correct: r.correct, codes: JSON.stringify(r.statusCodes),
  })));
  for (const r of results) if ('readLatencyMs' in r) console.log(`${r.scenario}: reads p50 ${r.readLatencyMs!.p50} ms, p99 ${r.readLatencyMs!.p99} ms`);

  const machine = { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, memoryGiB: round(totalmem() / 2 ** 30, 1) };
  const stamp = new Date().toISOString();
  const resultsDir = join(ROOT, 'perf', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const base = join(resultsDir, `${stamp.replace(/[:.]/g, '-')}-${target.store}`);
  writeFileSync(`${base}.json`, JSON.stringify({ stamp, machine, duplicateRatio: DUPLICATE_RATIO, baseline, results }, null, 2));
  const title = `pubsub-aggregator on ${target.store}, ${stamp.slice(0, 10)}, ${machine.cpus} cores, ${machine.node}`;
  writeFileSync(`${base}.svg`, renderChart(results, baseline.eventsPerSecond, title));
  console.log(`written ${base}.json and .svg`);
  if (options.docs) {
    const suffix = target.store === 'sqlite' ? '' : `-${target.store}`;
    copyFileSync(`${base}.json`, join(ROOT, 'docs', `perf-results${suffix}.json`));
    copyFileSync(`${base}.svg`, join(ROOT, 'docs', `perf-chart${suffix}.svg`));
    console.log(`copied to docs/perf-results${suffix}.json and docs/perf-chart${suffix}.svg`);
  }
  if (results.some((r) => !r.correct || r.errors > 0)) process.exitCode = 1;
} finally {
  await cluster?.remove();
  rmSync(dir, { recursive: true, force: true });
}
