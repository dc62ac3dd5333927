/*
 * npm run perf [-- scenario … | --all] [--store sqlite|postgres] [--replicas 1,2] [--docs]: for each
 * scenario, starts the real server (or N replicas on one PostgreSQL database) as child processes on a
 * fresh database, drives them over loopback with autocannon (latency from its HDR histogram), checks the
 * store's counters against exactly what was sent, and prints events/s and latency beside a same-run
 * baseline: the store alone, same schema and batch size, no HTTP, no ring (SqliteEventStore in one
 * process; PostgresEventStore from 4 direct connections). Writes perf/results/<time>-<store>.json and
 * .svg (and docs/perf-results[-postgres].json, docs/perf-chart[-postgres].svg with --docs).
 *
 * Store-lifetime scenarios (SQLite, only by name; perf/grown.ts, perf/retention.ts):
 *   grown-1m | grown-5m | grown-20m | grown-100m | grown --grown-events N  [--grown-scenario batch1000] [--hot-keys N]
 *   retention [--retention-rule '*=20s'] [--dedup-window 40s] [--retention-rate 5000] [--retention-seconds 90] [--mixed-seconds 60] [--hot-keys 50000]
 * Reader scenario (both stores, only by name; perf/read.ts):
 *   read [--read-events 1000000] [--read-paths stream,/events,consumer (names the paths start with; default: all)]
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { renderChart } from './chart.js';
import { BATCH, deployCeiling, postgresTarget, sqliteTarget } from './deployments.js';
import { runGrown } from './grown.js';
import { round, runScenario } from './load.js';
import { postgresReadTarget, runRead, sqliteReadTarget } from './read.js';
import { runRetention } from './retention.js';
import { DUPLICATE_RATIO, GROWN_EVENTS, READ_SCENARIO, RETENTION_SCENARIO, SCENARIOS } from './scenarios.js';
import { freshDatabase, startCluster } from '../scripts/pg-cluster.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BASELINE_EVENTS = 300_000;

const { values: options, positionals: named } = parseArgs({
  allowPositionals: true,
  options: {
    all: { type: 'boolean', default: false },
    docs: { type: 'boolean', default: false },
    store: { type: 'string', default: 'sqlite' },
    replicas: { type: 'string', default: '1' },
    'grown-events': { type: 'string', default: '1000000' },
    'grown-scenario': { type: 'string', default: 'batch1000' },
    'hot-keys': { type: 'string' },
    'retention-rule': { type: 'string', default: '*=20s' },
    'dedup-window': { type: 'string', default: '40s' },
    'retention-rate': { type: 'string', default: '5000' },
    'retention-seconds': { type: 'string', default: '90' },
    'mixed-seconds': { type: 'string', default: '60' },
    'read-events': { type: 'string', default: '1000000' },
    'read-paths': { type: 'string' },
  },
});
const grownNames = named.filter((n) => Object.hasOwn(GROWN_EVENTS, n));
const lifetime = grownNames.length > 0 || named.includes(RETENTION_SCENARIO);
const grownScenario = SCENARIOS.find((s) => s.name === options['grown-scenario']);
const unknown = named.filter((n) => !SCENARIOS.some((s) => s.name === n || s.group === n) && !Object.hasOwn(GROWN_EVENTS, n) && n !== RETENTION_SCENARIO && n !== READ_SCENARIO);
const counts = [options['grown-events'], options['hot-keys'] ?? '1', options['retention-rate'], options['retention-seconds'], options['mixed-seconds'], options['read-events']];
if (unknown.length || !['sqlite', 'postgres'].includes(options.store) || (lifetime && options.store !== 'sqlite') || !grownScenario || !counts.every((c) => Number(c) >= 1)) {
  console.error(`usage: npm run perf -- [--store sqlite|postgres] [--replicas 1,2] [--all] [--docs] [scenario …]
scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}
store-lifetime scenarios (SQLite only, by name): ${[...Object.keys(GROWN_EVENTS), RETENTION_SCENARIO].join(', ')}
reader scenario (by name): ${READ_SCENARIO} (options in perf/run.ts's header)`);
  process.exit(2);
}
const hotKeys: Record<string, string> = options['hot-keys'] === undefined ? {} : { DEDUP_HOT_KEYS: options['hot-keys'] };
const replicaCounts = options.replicas.split(',').map(Number);
const chosen = SCENARIOS.filter((s) => (named.length ? named.includes(s.name) || named.includes(s.group!) : options.all || !s.optIn));

const dir = mkdtempSync(join(tmpdir(), 'aggregator-perf-'));
// PostgreSQL runs are on a throwaway cluster of their own (scripts/pg-test-cluster.sh), like the tests'.
const cluster = options.store === 'postgres' ? await startCluster() : undefined;
try {
  const sqlite = cluster ? undefined : sqliteTarget(dir);
  const target = sqlite ?? postgresTarget(cluster!.url);
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
      // It reads JSON /publish bodies only; the other formats are compared with their JSON scenario instead.
      const ceiling = (scenario.format ?? 'json') === 'json' ? await runScenario(scenario, name, 1, deployCeiling) : undefined;
      console.log(`${process.stdout.isTTY ? '\r' : ''}  ${result.scenario}: ${result.seconds} s (ceiling ${ceiling?.seconds ?? '-'} s)${' '.repeat(30)}`);
      results.push({
        ...result,
        ratioToStore: round(result.uniquePerSecond / baseline.eventsPerSecond, 2),
        ceiling: ceiling && { eventsPerSecond: ceiling.eventsPerSecond, seconds: ceiling.seconds, latencyMs: ceiling.latencyMs, statsLatencyMs: ceiling.statsLatencyMs },
        ratioToCeiling: ceiling && round(result.eventsPerSecond / ceiling.eventsPerSecond, 2),
        p99ToCeiling: ceiling && round(result.latencyMs.p99 / Math.max(1, ceiling.latencyMs.p99), 2),
      });
    }
  }
  const grown = [];
  for (const name of grownNames) {
    grown.push(await runGrown(sqlite!, name, GROWN_EVENTS[name] ?? Number(options['grown-events']), grownScenario, hotKeys));
  }
  const retention = named.includes(RETENTION_SCENARIO)
    ? await runRetention(sqlite!, {
        rule: options['retention-rule'], dedupWindow: options['dedup-window'], eventsPerSecond: Number(options['retention-rate']), seconds: Number(options['retention-seconds']),
        mixedSeconds: Number(options['mixed-seconds']), settings: { DEDUP_HOT_KEYS: '50000', ...hotKeys },
      })
    : undefined;
  const read = named.includes(READ_SCENARIO)
    ? await runRead(cluster ? postgresReadTarget(await freshDatabase(cluster.url)) : sqliteReadTarget(sqlite!.path('read')), Number(options['read-events']), options['read-paths']?.split(','))
    : undefined;
  if (results.length) console.table(results.map((r) => ({
    scenario: r.scenario, s: r.seconds, 'events/s': r.eventsPerSecond, 'unique/s': r.uniquePerSecond, 'req/s': r.requestsPerSecond,
    'p50 ms': r.latencyMs.p50, 'p99 ms': r.latencyMs.p99, 'max ms': r.latencyMs.max,
    '/stats p99': r.statsLatencyMs.p99, '(ceiling)': r.ceiling?.statsLatencyMs.p99, '(in server ≤)': r.statsServerP99WithinMs,
    'loop p99': r.eventLoopDelayMs?.p99,
    [`× ${target.store}`]: r.ratioToStore, '× ceiling': r.ratioToCeiling, 'p99 × ceiling': r.p99ToCeiling,
    correct: r.correct, codes: JSON.stringify(r.statusCodes),
  })));
  for (const r of results) if ('readLatencyMs' in r) console.log(`${r.scenario}: reads p50 ${r.readLatencyMs!.p50} ms, p99 ${r.readLatencyMs!.p99} ms`);

  // The load average says how much else shared the cores during the run (the 1-minute figure at its end).
  const machine = { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, memoryGiB: round(totalmem() / 2 ** 30, 1), loadAverage: loadavg().map((l) => round(l, 1)) };
  const stamp = new Date().toISOString();
  const resultsDir = join(ROOT, 'perf', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const base = join(resultsDir, `${stamp.replace(/[:.]/g, '-')}-${target.store}`);
  writeFileSync(`${base}.json`, JSON.stringify({ stamp, machine, duplicateRatio: DUPLICATE_RATIO, baseline, results, ...(lifetime && { grown, retention }), ...(read && { read }) }, null, 2));
  const title = `pubsub-aggregator on ${target.store}, ${stamp.slice(0, 10)}, ${machine.cpus} cores, ${machine.node}`;
  if (results.length) writeFileSync(`${base}.svg`, renderChart(results, baseline.eventsPerSecond, title));
  console.log(`written ${base}.json${results.length ? ' and .svg' : ''}; load average at the end ${machine.loadAverage.join(' / ')} on ${machine.cpus} cores`);
  if (options.docs && results.length) {
    const suffix = target.store === 'sqlite' ? '' : `-${target.store}`;
    copyFileSync(`${base}.json`, join(ROOT, 'docs', `perf-results${suffix}.json`));
    copyFileSync(`${base}.svg`, join(ROOT, 'docs', `perf-chart${suffix}.svg`));
    console.log(`copied to docs/perf-results${suffix}.json and docs/perf-chart${suffix}.svg`);
  }
  const loads = [...results, ...grown.flatMap((g) => [g.empty.load, g.empty.growth.load, g.grown.load, g.grown.growth.load])];
  const steady = retention ? [retention.control, retention.retained, retention.withReaders] : [];
  if (loads.some((r) => !r.correct || r.errors > 0) || steady.some((r) => r.errors > 0)) process.exitCode = 1;
} finally {
  await cluster?.remove();
  rmSync(dir, { recursive: true, force: true });
}
