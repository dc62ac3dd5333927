import autocannon from 'autocannon';
import { serverDeployment, type SqliteTarget } from './deployments.js';
import { makeBodies, measureLoad, publishRequest, round } from './load.js';
import { DUPLICATE_RATIO, type Scenario } from './scenarios.js';
import { startServer, type PerfServer } from './server.js';
import {
  commitHistogram, commitsBetween, indexLogLines, listeningAtMs, mib, printTargets, storeFiles, storeStats, type StoreFiles, type TargetRow,
} from './store-probe.js';

/*
 * `grown`: how the SQLite store behaves once it holds `events` events (issue 12). The publish scenario,
 * then a growth run (enough new keys that the dedup index seals or grows at least once: its longest
 * commits), run first on an empty store. Then the store is pre-filled straight through SqliteEventStore
 * (no HTTP) and the real server is started on it: once and stopped with SIGTERM, so that any shutdown
 * work is done; again, timed from spawn to /readyz, with the scenario and the growth run published; then
 * once more, killed with SIGKILL while publishing, and restarted, timed. Every ratio is to the empty
 * store of the same run.
 */

/** Start-up may read the whole store; 20M events took 40 s before issue 12. */
const READY_TIMEOUT_MS = 30 * 60_000;
/** Events per pre-fill transaction: as the issue's own measurements were taken, and fewer commits for 100M. */
const PREFILL_BATCH = 10_000;
/** Into the publishing before the kill -9: long enough for the WAL to hold commits. */
const CRASH_AFTER_MS = 3_000;
/** The longest-commit target; a bucket bound of the histogram, so the count over it is exact. */
const COMMIT_LIMIT_MS = 50;

/** DEDUP_HOT_KEYS's default (src/config.ts). */
const DEFAULT_HOT_KEYS = 1_000_000;

/** Batches of 1,000 (a fifth of them re-sent) carrying about `keys` new keys. */
const growthScenario = (keys: number): Scenario => ({
  name: 'growth', description: `${keys.toLocaleString('en')} new keys in batches of 1,000, 4 connections, random ids`,
  requests: Math.ceil(keys / ((1 - DUPLICATE_RATIO) * 1_000)), eventsPerRequest: 1_000, connections: 4, idKind: 'v4',
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What the log says of a start-up; read once the server has exited, so that all of its output is in. */
const startupLog = (server: PerfServer) => ({ listeningAtMs: listeningAtMs(server.log()), indexLog: indexLogLines(server.log()) });

async function timed(work: Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work;
  return round(performance.now() - started, 0);
}

export async function runGrown(target: SqliteTarget, name: string, events: number, scenario: Scenario, settings: Record<string, string>) {
  const start = (db: string) =>
    startServer({ STORE: 'sqlite', DB_PATH: target.path(db), ...settings }, { readyTimeoutMs: READY_TIMEOUT_MS, keepLog: true });

  // Enough new keys that the index seals (DEDUP_HOT_KEYS) or grows at least once during the growth run.
  const growth = growthScenario(Math.ceil(Number(settings.DEDUP_HOT_KEYS ?? DEFAULT_HOT_KEYS) * 1.1));

  /** Starts the server on `db`, publishes the scenario, then the growth run, SIGTERMs it; what it took and held. */
  async function publishRun(db: string) {
    const bodies = makeBodies(scenario);
    const server = await start(db);
    const rssReadyBytes = server.rssBytes();
    const deployment = serverDeployment(server);
    const before = await commitHistogram(server.url);
    const load = await measureLoad(scenario, db, 1, deployment, bodies);
    const afterLoad = await commitHistogram(server.url);
    const rssAfterPublishBytes = server.rssBytes();
    const growthLoad = await measureLoad(growth, db, 1, deployment, makeBodies(growth));
    const afterGrowth = await commitHistogram(server.url);
    const figures = {
      startupMs: round(server.startupMs, 0),
      rssReadyBytes,
      rssAfterPublishBytes,
      load,
      commits: commitsBetween(before, afterLoad, COMMIT_LIMIT_MS),
      growth: { load: growthLoad, commits: commitsBetween(afterLoad, afterGrowth, COMMIT_LIMIT_MS), rssAfterBytes: server.rssBytes() },
      store: await storeStats(server.url),
      stopMs: await timed(server.stop()),
    };
    return { ...figures, ...startupLog(server), files: storeFiles(target.path(db)) };
  }

  console.log(`\n${name}: ${scenario.name} on an empty store, then on ${events.toLocaleString('en')} events`);
  const empty = await publishRun(`${name}-empty`);

  const fillStarted = performance.now();
  const fillRate = await target.fill(name, events, 'v4', (done) => {
    if (process.stdout.isTTY) process.stdout.write(`\r  pre-filling ${done.toLocaleString('en')} / ${events.toLocaleString('en')}   `);
  }, PREFILL_BATCH);
  const prefill = { events, eventsPerSecond: fillRate, seconds: round((performance.now() - fillStarted) / 1000, 0), files: storeFiles(target.path(name)) };
  console.log(`  pre-filled in ${prefill.seconds} s (${fillRate.toLocaleString('en')} events/s committing), ${mib(prefill.files.totalBytes)} MiB`);

  const first = await start(name);
  const firstStart = { startupMs: round(first.startupMs, 0), rssReadyBytes: first.rssBytes() };
  const firstStopMs = await timed(first.stop());
  console.log(`  first start ${firstStart.startupMs} ms, SIGTERM took ${firstStopMs} ms`);

  const grown = await publishRun(name);
  console.log(`  after SIGTERM: ready in ${grown.startupMs} ms; ${grown.load.eventsPerSecond.toLocaleString('en')} events/s (empty store ${empty.load.eventsPerSecond.toLocaleString('en')})`);

  const crash = await crashAndRestart(start, target.path(name), name, scenario);
  console.log(`  after kill -9: ready in ${crash.startupMs} ms`);

  const result = {
    name, events, scenario: scenario.name, settings, prefill,
    firstStart: { ...firstStart, stopMs: firstStopMs, ...startupLog(first) },
    empty, grown, crash,
    ratios: {
      eventsPerSecond: round(grown.load.eventsPerSecond / empty.load.eventsPerSecond, 2),
      p99: round(grown.load.latencyMs.p99 / Math.max(1, empty.load.latencyMs.p99), 2),
      rssReady: round(grown.rssReadyBytes / empty.rssReadyBytes, 2),
    },
    rssPerStoredKeyBytes: round((grown.rssReadyBytes - empty.rssReadyBytes) / events, 1),
  };
  printGrown(result);
  return result;
}

/** Starts the server on `db` (at `path`), kills it with SIGKILL while the scenario publishes, restarts it; the restart's figures. */
async function crashAndRestart(start: (db: string) => Promise<PerfServer>, path: string, db: string, scenario: Scenario) {
  const { bodies } = makeBodies(scenario);
  const server = await start(db);
  const publishing = autocannon({
    url: `${server.url}/publish`, connections: scenario.connections, duration: 600, timeout: 60,
    requests: [publishRequest(scenario, bodies, {}).request],
  });
  await sleep(CRASH_AFTER_MS);
  const filesAtKill = storeFiles(path);
  await server.crash();
  (publishing as unknown as { stop: () => void }).stop();
  await publishing;
  const restarted = await start(db);
  const figures = { filesAtKill, startupMs: round(restarted.startupMs, 0), rssReadyBytes: restarted.rssBytes() };
  await restarted.stop();
  return { ...figures, ...startupLog(restarted) };
}

type GrownResult = Awaited<ReturnType<typeof runGrown>>;

const commits = (c: { commits: number; overLimit: number; longest: string }) => `${c.overLimit} of ${c.commits} commits > ${COMMIT_LIMIT_MS} ms, longest ${c.longest}`;
const seconds = (ms: number) => `${round(ms / 1000, 2)} s`;
const files = (f: StoreFiles) => `db ${mib(f.dbBytes)} MiB, wal ${mib(f.walBytes)} MiB, keys ${mib(f.keysBytes)} MiB`;

function printGrown(r: GrownResult): void {
  const { empty, grown, crash } = r;
  // The start-up targets are for 20M (SIGTERM 2 s, kill -9 10 s) and 100M (SIGTERM 5 s) events.
  const startupLimitMs = r.events > 20_000_000 ? 5_000 : 2_000;
  const indexBytesPerKey = grown.store?.index_memory_bytes !== undefined && grown.store.dedup_keys
    ? `${round(grown.store.index_memory_bytes / grown.store.dedup_keys, 1)} B/key (/stats.store: ${grown.store.dedup_keys.toLocaleString('en')} keys, ${grown.store.hot_keys ?? '?'} hot, ${grown.store.segments ?? '?'} segments)`
    : 'not reported (/stats has no store object)';
  const rows: TargetRow[] = [
    { measure: 'start-up after SIGTERM', measured: `${seconds(grown.startupMs)} (empty store ${seconds(empty.startupMs)})`, target: r.events > 20_000_000 ? '≤ 5 s at 100M' : '≤ 2 s at 20M', met: grown.startupMs <= startupLimitMs },
    { measure: 'start-up after kill -9 while publishing', measured: `${seconds(crash.startupMs)} (WAL at the kill ${mib(crash.filesAtKill.walBytes)} MiB)`, target: '≤ 10 s at 20M', met: crash.startupMs <= 10_000 },
    { measure: 'RSS after ready', measured: `${mib(grown.rssReadyBytes)} MiB (empty ${mib(empty.rssReadyBytes)} MiB, ×${r.ratios.rssReady})`, target: '—', met: '—' },
    { measure: 'RSS above the empty store per stored key (index + SQLite page cache ≤ 64 MiB)', measured: `${r.rssPerStoredKeyBytes} B/key`, target: '≤ 4 B/key at 100M beyond the newest few million', met: r.rssPerStoredKeyBytes <= 4 },
    { measure: 'dedup index memory', measured: indexBytesPerKey, target: '≤ 4 B/key at 100M beyond the newest few million', met: '—' },
    { measure: 'RSS after publishing, after the growth run', measured: `${mib(grown.rssAfterPublishBytes)}, ${mib(grown.growth.rssAfterBytes)} MiB (empty ${mib(empty.rssAfterPublishBytes)}, ${mib(empty.growth.rssAfterBytes)} MiB)`, target: '—', met: '—' },
    { measure: `publish rate, ${r.scenario}`, measured: `${grown.load.eventsPerSecond.toLocaleString('en')} events/s vs ${empty.load.eventsPerSecond.toLocaleString('en')} empty (×${r.ratios.eventsPerSecond})`, target: '≥ 0.7 × empty store', met: r.ratios.eventsPerSecond >= 0.7 },
    { measure: 'publish p99', measured: `${grown.load.latencyMs.p99} ms vs ${empty.load.latencyMs.p99} ms empty (×${r.ratios.p99})`, target: '—', met: '—' },
    { measure: `longest commit, ${r.scenario}`, measured: `${commits(grown.commits)}, ${grown.load.maxCommitMsSampled} ms sampled; empty store: ${commits(empty.commits)}`, target: '—', met: '—' },
    { measure: `longest commit while the index grows: ${grown.growth.load.expected.unique.toLocaleString('en')} new keys`, measured: `${commits(grown.growth.commits)}, ${grown.growth.load.maxCommitMsSampled} ms sampled; publish max ${grown.growth.load.latencyMs.max} ms; empty store: ${commits(empty.growth.commits)}`, target: `≤ ${COMMIT_LIMIT_MS} ms`, met: grown.growth.commits.overLimit === 0 },
    { measure: 'first start after the pre-fill', measured: `${seconds(r.firstStart.startupMs)}, SIGTERM took ${seconds(r.firstStart.stopMs)}`, target: '—', met: '—' },
    { measure: 'files after pre-fill', measured: files(r.prefill.files), target: '—', met: '—' },
    { measure: 'files after the grown run', measured: files(grown.files), target: '—', met: '—' },
    { measure: 'correct (counters = sent)', measured: `grown ${grown.load.correct && grown.growth.load.correct}, empty ${empty.load.correct && empty.growth.load.correct}`, target: 'true', met: [grown, empty].every((run) => run.load.correct && run.growth.load.correct) },
  ];
  printTargets(`${r.name}: ${r.events.toLocaleString('en')} events pre-filled at ${r.prefill.eventsPerSecond.toLocaleString('en')} events/s (${r.prefill.seconds} s)`, rows);
  for (const [when, lines] of [['first start', r.firstStart.indexLog], ['after SIGTERM', grown.indexLog], ['after kill -9', crash.indexLog]] as const) {
    for (const line of lines) console.log(`  log (${when}, ${line.atMs} ms after spawn): ${JSON.stringify(line)}`);
  }
  console.log(`  HTTP listening after ${grown.listeningAtMs ?? '?'} ms (SIGTERM) / ${crash.listeningAtMs ?? '?'} ms (kill -9) of start-up`);
  for (const store of [empty.store, grown.store]) if (store) console.log(`  /stats.store: ${JSON.stringify(store)}`);
}
