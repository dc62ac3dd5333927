import autocannon from 'autocannon';
import { parseDedupWindow, parseRetentionRules } from '../src/retention.js';
import type { SqliteTarget } from './deployments.js';
import { makeBodies, percentile, publishRequest, round } from './load.js';
import { startPageReaders, type PagesRead } from './page-readers.js';
import { startServer, type PerfServer } from './server.js';
import { mib, printTargets, storeFiles, storeStats, type StoreStats, type TargetRow } from './store-probe.js';

/*
 * `retention`: publishes at a steady rate (below the server's maximum, so latency is the server's and
 * not a queue's) for `seconds`, sampling every 2 s the store's files, the server's RSS and the publish
 * latency of the window; once on a store without RETENTION, then on one with `rule`, same load, same run.
 * Then `mixedSeconds` more on the retention store while 3 readers pull /events pages: the WAL's peak.
 */

export interface RetentionOptions {
  /** RETENTION, e.g. '*=20s'. */
  rule: string;
  /**
   * DEDUP_WINDOW of the retention run: `forever` keeps every purged key (~76 bytes an event), so the files
   * grow by the keys; an age bounds them too, and only then can they be flat.
   */
  dedupWindow: string;
  eventsPerSecond: number;
  seconds: number;
  mixedSeconds: number;
  /** Environment of both servers (DEDUP_HOT_KEYS small enough that sealing happens during the run). */
  settings: Record<string, string>;
}

const BATCH = 100;
const CONNECTIONS = 8;
const SAMPLE_MS = 2_000;
/** The WAL is polled more often than the rest: its peak between checkpoints is short-lived. */
const WAL_POLL_MS = 100;
/** Flat: within ±10 % of the middle of its band. */
const BAND_LIMIT = 0.1;

interface Sample {
  /** Seconds since the load started, at the end of the window. */
  t: number;
  dbBytes: number;
  walBytes: number;
  keysBytes: number;
  totalBytes: number;
  walPeakBytes: number;
  rssBytes: number;
  requests: number;
  p50Ms: number;
  p99Ms: number;
  /** /stats.store.last_purge.at changed during the window. */
  purged: boolean;
  store: StoreStats | undefined;
  latenciesMs: number[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Publishes batches of 100 at `eventsPerSecond` for `seconds` to `server`, sampling as it goes. */
async function publishSteadily(server: PerfServer, path: string, eventsPerSecond: number, seconds: number) {
  const requestsPerSecond = Math.max(1, Math.round(eventsPerSecond / BATCH));
  // For a duration, not an amount: an amount is split evenly over the connections, whose rates are not
  // even, so the rate would sag at the end. A tenth more bodies than the rate needs, so none is sent twice.
  const { bodies } = makeBodies({ requests: Math.ceil(requestsPerSecond * seconds * 1.1), eventsPerRequest: BATCH, idKind: 'v4' });
  const statusCodes: Record<string, number> = {};
  let window: number[] = [];
  let walPeak = 0;
  const walPoll = setInterval(() => (walPeak = Math.max(walPeak, storeFiles(path).walBytes)), WAL_POLL_MS);
  const samples: Sample[] = [];
  let lastPurgeAt = (await storeStats(server.url))?.last_purge?.at;
  const publish = publishRequest({}, bodies, statusCodes);
  const started = performance.now();
  const load = new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      url: `${server.url}/publish`, connections: CONNECTIONS, overallRate: requestsPerSecond, duration: seconds, timeout: 60,
      requests: [publish.request],
    }, (error, done) => (error ? reject(error) : resolve(done)));
    instance.on('response', (_client, _status, _bytes, responseTime) => window.push(responseTime));
  });
  let running = true;
  const finished = load.then(() => {
    running = false;
    return performance.now();
  });
  // A sample every SAMPLE_MS, and a last one of the partial window when the load ends.
  for (let next = SAMPLE_MS, more = true; more; next += SAMPLE_MS) {
    await Promise.race([sleep(Math.max(0, started + next - performance.now())), finished]);
    more = running;
    if (!more && window.length === 0) break;
    const latenciesMs = window.sort((a, b) => a - b);
    window = [];
    const store = await storeStats(server.url);
    const files = storeFiles(path);
    samples.push({
      t: round((performance.now() - started) / 1000, 1), ...files, walPeakBytes: Math.max(walPeak, files.walBytes),
      rssBytes: server.rssBytes(), requests: latenciesMs.length, p50Ms: percentile(latenciesMs, 0.5), p99Ms: percentile(latenciesMs, 0.99),
      purged: store?.last_purge?.at !== undefined && store.last_purge.at !== lastPurgeAt, store, latenciesMs,
    });
    lastPurgeAt = store?.last_purge?.at;
    walPeak = 0;
  }
  clearInterval(walPoll);
  const result = await load;
  const elapsed = ((await finished) - started) / 1000;
  return { samples, statusCodes, errors: result.errors + result.timeouts, eventsPerSecond: round((publish.sent() * BATCH) / elapsed, 0) };
}
type Run = Awaited<ReturnType<typeof publishSteadily>>;

const p99Of = (samples: Sample[]) => percentile(samples.flatMap((s) => s.latenciesMs).sort((a, b) => a - b), 0.99);

/** How far the samples' sizes stray from the middle of their band: (max − min) / (max + min). */
function band(samples: Sample[], pick: (s: Sample) => number) {
  const values = samples.map(pick);
  const [min, max] = [Math.min(...values), Math.max(...values)];
  return { minBytes: min, maxBytes: max, plusMinus: round((max - min) / Math.max(1, max + min), 3) };
}

export async function runRetention(target: SqliteTarget, { rule, dedupWindow, eventsPerSecond, seconds, mixedSeconds, settings }: RetentionOptions) {
  const [first] = parseRetentionRules(rule);
  // The first period is over once the oldest events may go and, with a window, their keys too; a count-only
  // rule has no age: use a third of the run.
  const windowMs = parseDedupWindow(dedupWindow) ?? 0;
  const periodSeconds = first?.maxAgeMs !== undefined ? Math.max(first.maxAgeMs, windowMs) / 1000 : seconds / 3;
  console.log(`\nretention: ${eventsPerSecond.toLocaleString('en')} events/s for ${seconds} s without RETENTION, then with RETENTION='${rule}' DEDUP_WINDOW=${dedupWindow}, then ${mixedSeconds} s more with 3 readers`);

  /** `work` on a server of its own, on a fresh store `name` with `extra` settings. */
  const serve = async <T>(name: string, extra: Record<string, string>, work: (server: PerfServer, path: string) => Promise<T>) => {
    const server = await startServer({ STORE: 'sqlite', DB_PATH: target.path(name), ...settings, ...extra });
    try {
      return await work(server, target.path(name));
    } finally {
      await server.stop();
    }
  };
  const control = await serve('retention-control', {}, (server, path) => publishSteadily(server, path, eventsPerSecond, seconds));
  const { retained, withReaders } = await serve('retention', { RETENTION: rule, DEDUP_WINDOW: dedupWindow }, async (server, path) => {
    const retained = await publishSteadily(server, path, eventsPerSecond, seconds);
    const stored = ((await (await fetch(`${server.url}/stats`)).json()) as { unique_processed: number }).unique_processed;
    const readers = startPageReaders(server.url, 3, stored);
    const withReaders = await publishSteadily(server, path, eventsPerSecond, mixedSeconds);
    return { retained, withReaders: { ...withReaders, read: await readers.stop() } };
  });

  const afterFirstPeriod = (r: Run) => r.samples.filter((s) => s.t >= periodSeconds);
  const purgeWindows = retained.samples.filter((s) => s.purged);
  // Without /stats.store the harness cannot see when a purge ran: every window after the first period may hold one.
  const duringPurges = purgeWindows.length > 0 ? purgeWindows : afterFirstPeriod(retained);
  const result = {
    rule, dedupWindow, eventsPerSecond, seconds, mixedSeconds, settings, periodSeconds,
    control, retained, withReaders,
    purgeWindowsSeenInStats: purgeWindows.length,
    p99Ms: {
      control: p99Of(control.samples),
      controlAfterFirstPeriod: p99Of(afterFirstPeriod(control)),
      retained: p99Of(retained.samples),
      duringPurges: p99Of(duringPurges),
    },
    steadyBand: { total: band(afterFirstPeriod(retained), (s) => s.totalBytes), db: band(afterFirstPeriod(retained), (s) => s.dbBytes) },
    walPeakBytes: { steady: Math.max(...retained.samples.map((s) => s.walPeakBytes)), withReaders: Math.max(...withReaders.samples.map((s) => s.walPeakBytes)) },
  };
  printRetention(result);
  // The windows' raw latencies have served their percentiles; the JSON keeps the per-window figures.
  for (const r of [control, retained, withReaders]) for (const s of r.samples) s.latenciesMs = [];
  return result;
}

function printRetention(r: Awaited<ReturnType<typeof runRetention>>): void {
  console.log(`\nretention: file size over time (every ${SAMPLE_MS / 1000} s; first retention period ${r.periodSeconds} s)`);
  console.table(r.retained.samples.map((s, i) => ({
    s: s.t, 'total MiB': mib(s.totalBytes), 'db MiB': mib(s.dbBytes), 'wal MiB': mib(s.walBytes), 'keys MiB': mib(s.keysBytes),
    'RSS MiB': mib(s.rssBytes), requests: s.requests, 'p50 ms': s.p50Ms, 'p99 ms': s.p99Ms, purge: s.purged ? 'yes' : '', segments: s.store?.segments ?? '',
    'no RETENTION: total MiB': r.control.samples[i] ? mib(r.control.samples[i].totalBytes) : '', 'no RETENTION: p99 ms': r.control.samples[i]?.p99Ms ?? '',
  })));
  const { total, db } = r.steadyBand;
  const purgeBasis = r.purgeWindowsSeenInStats > 0
    ? `${r.purgeWindowsSeenInStats} windows in which /stats.store.last_purge changed`
    : 'every window after the first period (/stats reports no purges)';
  const rows: TargetRow[] = [
    { measure: `file size after the first period (db+wal+keys)`, measured: `${mib(total.minBytes)}–${mib(total.maxBytes)} MiB: ±${round(total.plusMinus * 100, 1)} % (db alone ±${round(db.plusMinus * 100, 1)} %)`, target: `flat: ±${BAND_LIMIT * 100} %`, met: total.plusMinus <= BAND_LIMIT },
    { measure: 'publish p99, whole run', measured: `${r.p99Ms.retained} ms vs ${r.p99Ms.control} ms without RETENTION (×${round(r.p99Ms.retained / Math.max(1, r.p99Ms.control), 2)})`, target: '—', met: '—' },
    { measure: 'publish p99 while purging', measured: `${r.p99Ms.duringPurges} ms vs ${r.p99Ms.controlAfterFirstPeriod} ms without RETENTION after the first period (×${round(r.p99Ms.duringPurges / Math.max(1, r.p99Ms.controlAfterFirstPeriod), 2)}); ${purgeBasis}`, target: '≤ 2 × without purging', met: r.p99Ms.duringPurges <= 2 * Math.max(1, r.p99Ms.controlAfterFirstPeriod) },
    { measure: `WAL peak, ${r.mixedSeconds} s publish + 3 /events readers`, measured: `${mib(r.walPeakBytes.withReaders)} MiB (publishing alone ${mib(r.walPeakBytes.steady)} MiB); read ${pagesRead(r.withReaders.read)}`, target: 'bounded: state the peak', met: '—' },
    { measure: 'rate reached', measured: `${r.retained.eventsPerSecond.toLocaleString('en')} events/s (asked ${r.eventsPerSecond.toLocaleString('en')}), without RETENTION ${r.control.eventsPerSecond.toLocaleString('en')}`, target: '—', met: '—' },
    { measure: 'answers', measured: `${JSON.stringify(r.retained.statusCodes)}, errors ${r.retained.errors}; without RETENTION ${JSON.stringify(r.control.statusCodes)}, errors ${r.control.errors}`, target: 'all 200', met: r.retained.errors + r.control.errors === 0 && Object.keys({ ...r.retained.statusCodes, ...r.control.statusCodes }).every((c) => c === '200') },
  ];
  printTargets(`retention: RETENTION='${r.rule}' DEDUP_WINDOW=${r.dedupWindow}, ${r.eventsPerSecond.toLocaleString('en')} events/s, ${r.seconds} s, ${JSON.stringify(r.settings)}`, rows);
  const last = r.retained.samples.at(-1)?.store;
  if (last) console.log(`  /stats.store at the end: ${JSON.stringify(last)}`);
}

const pagesRead = (read: PagesRead) => `${read.pages} pages, ${mib(read.bytes)} MiB`;
