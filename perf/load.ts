import { Worker } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import autocannon from 'autocannon';
import { SyntheticEvents } from '../src/clients/synthetic-events.js';
import type { Deployment } from './deployments.js';
import { histogramIn, observedBetween, type HistogramCounts } from './histogram.js';
import { FORMATS } from './bodies.js';
import { DUPLICATE_RATIO, type Scenario } from './scenarios.js';
import type { ProbeResult } from './stats-probe.js';

export const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;
export const percentile = (sorted: number[], q: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0, 2);

/** Request bodies, generated before the clock starts, and the exact unique/duplicate split they carry. */
export function makeBodies(scenario: Pick<Scenario, 'requests' | 'eventsPerRequest' | 'idKind' | 'gzip' | 'format'>) {
  const source = new SyntheticEvents({ duplicateRatio: DUPLICATE_RATIO, topics: 16, idKind: scenario.idKind, source: 'perf' });
  const { encode } = FORMATS[scenario.format ?? 'json'];
  const bodies = Array.from({ length: scenario.requests }, (): string | Buffer => {
    const body = encode(source.batch(scenario.eventsPerRequest));
    return scenario.gzip ? gzipSync(body) : body;
  });
  return { bodies, unique: source.uniqueCount, duplicates: source.duplicateCount };
}
export type Bodies = ReturnType<typeof makeBodies>;

/** An autocannon request that POSTs the bodies in turn and counts the answers' status codes. */
export function publishRequest(scenario: Pick<Scenario, 'gzip' | 'format'>, bodies: (string | Buffer)[], statusCodes: Record<string, number>) {
  let next = 0;
  const { contentType } = FORMATS[scenario.format ?? 'json'];
  return {
    sent: () => next,
    request: {
      method: 'POST' as const,
      headers: { 'content-type': contentType, ...(scenario.gzip ? { 'content-encoding': 'gzip' } : {}) },
      setupRequest: (request: autocannon.Request) => ({ ...request, body: bodies[next++ % bodies.length] }),
      onResponse: (status: number) => {
        statusCodes[status] = (statusCodes[status] ?? 0) + 1;
      },
    },
  };
}

/** Events the replicas have taken since they started (a deployment may serve more than one load). */
async function received(urls: string[]): Promise<number> {
  const answers = await Promise.all(urls.map(async (url) => (await (await fetch(`${url}/stats`)).json()) as { replica: { received: number } }));
  return answers.reduce((sum, stats) => sum + stats.replica.received, 0);
}

/** What a server's /metrics says: its event-loop delay since the previous scrape, and the /stats durations so far. */
interface ServerScrape {
  loopDelayMs: { p50: number; p99: number; max: number };
  /** The /stats requests' durations in the server. */
  statsWithin: HistogramCounts;
}

/** Scrapes each server's /metrics (which starts a new event-loop-delay period); undefined for the ceiling, which has none. */
async function scrapeServers(urls: string[]): Promise<ServerScrape[] | undefined> {
  const texts = await Promise.all(urls.map(async (url) => {
    const res = await fetch(`${url}/metrics`);
    return res.ok ? res.text() : undefined;
  }));
  if (texts.some((text) => text === undefined)) return undefined;
  return texts.map((text) => {
    const lines = text!.split('\n');
    const gauge = (name: string) => {
      const line = lines.find((l) => l.startsWith(`aggregator_event_loop_delay_${name}_seconds{`));
      return round(Number(line?.slice(line.lastIndexOf(' ') + 1)) * 1000, 2);
    };
    const statsWithin = histogramIn(text!, 'aggregator_http_request_duration_seconds', 'route="/stats"');
    return { loopDelayMs: { p50: gauge('p50'), p99: gauge('p99'), max: gauge('max') }, statsWithin };
  });
}

/**
 * Between two scrapes, per figure the worst replica's: the event-loop delay, and the bucket bound (ms) within
 * which the server itself answered 99 % of /stats requests (from receiving the request to sending the answer).
 */
function serverSide(before: ServerScrape[], after: ServerScrape[]) {
  const statsP99 = after.map(({ statsWithin }, i) => observedBetween(before[i]!.statsWithin, statsWithin).boundHolding(0.99));
  const worst = (pick: (s: ServerScrape) => number) => Math.max(...after.map(pick));
  return {
    eventLoopDelayMs: { p50: worst((s) => s.loopDelayMs.p50), p99: worst((s) => s.loopDelayMs.p99), max: worst((s) => s.loopDelayMs.max) },
    statsServerP99WithinMs: Math.max(...statsP99),
  };
}

/** How long the replicas may take, after the load's last answer, to report every event taken and committed. */
const SETTLE_TIMEOUT_MS = 60_000;

function probeStats(urls: string[], events: number): { result: Promise<ProbeResult>; stop: () => Promise<number> } {
  const worker = new Worker(new URL('./stats-probe.js', import.meta.url), { workerData: { urls, events } });
  const result = new Promise<ProbeResult>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return { result, stop: () => worker.terminate() };
}

/**
 * The probe's result, or, when the replicas do not settle within SETTLE_TIMEOUT_MS, an error saying why the
 * run cannot finish: a request answered other than 2xx is not resent, so its events never count.
 */
async function settledWithin(probe: ReturnType<typeof probeStats>, urls: string[], expected: number, statusCodes: Record<string, number>,
  errors: number): Promise<ProbeResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, SETTLE_TIMEOUT_MS, 'timeout')));
  const outcome = await Promise.race([probe.result, timeout]).finally(() => clearTimeout(timer));
  if (outcome !== 'timeout') return outcome;
  await probe.stop();
  const taken = await received(urls);
  throw new Error(`the replicas did not settle within ${SETTLE_TIMEOUT_MS / 1000} s of the load's last answer: they took ${taken} of ` +
    `${expected} events; answers ${JSON.stringify(statusCodes)}, ${errors} errors or timeouts (a refused request is not resent)`);
}

/** Splits n into `parts` near-equal whole shares. */
const shares = (n: number, parts: number) => Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));

/** Runs `scenario` against what `deploy` starts (the aggregator, or the in-memory ceiling), then stops it. */
export async function runScenario(scenario: Scenario, name: string, replicas: number, deploy: () => Promise<Deployment>) {
  const bodies = makeBodies(scenario);
  const deployment = await deploy();
  try {
    return await measureLoad(scenario, name, replicas, deployment, bodies);
  } finally {
    await deployment.stop();
  }
}

/** Sends `bodies` to a running deployment as `scenario` says; leaves it running. */
export async function measureLoad(scenario: Scenario, name: string, replicas: number, deployment: Deployment, { bodies, unique, duplicates }: Bodies) {
  const base = await deployment.counters();
  const events = scenario.requests * scenario.eventsPerRequest;
  const statusCodes: Record<string, number> = {};
  const publish = publishRequest(scenario, bodies, statusCodes);
  const receivedBefore = await received(deployment.urls);
  const scrapedBefore = await scrapeServers(deployment.urls);
  const started = performance.timeOrigin + performance.now();
  const probe = probeStats(deployment.urls, receivedBefore + events);
  const readers = scenario.readers
    ? autocannon({
        url: deployment.urls[0]!, connections: 2, duration: 600,
        requests: [{ method: 'GET', path: '/events?limit=100' }, { method: 'GET', path: '/stats' }],
      })
    : undefined;
  const progress = setInterval(() => {
    if (process.stdout.isTTY) process.stdout.write(`\r  ${name}: ${publish.sent()} / ${bodies.length} requests`);
  }, 250);
  // One load generator per replica, as a load balancer would spread the same connections and requests.
  const connections = shares(scenario.connections, replicas);
  const loads = await Promise.all(shares(bodies.length, replicas).map((amount, i) => autocannon({
    url: `${deployment.urls[i]}${FORMATS[scenario.format ?? 'json'].path}${scenario.query ?? ''}`,
    connections: Math.max(1, connections[i]!),
    amount,
    timeout: 60,
    requests: [publish.request],
  })));
  clearInterval(progress);
  const settled = await settledWithin(probe, deployment.urls, receivedBefore + events, statusCodes,
    loads.reduce((sum, l) => sum + l.errors + l.timeouts, 0));
  const scrapedAfter = await scrapeServers(deployment.urls);
  if (readers) (readers as unknown as { stop: () => void }).stop();
  const reads = readers && (await readers);
  const seconds = (settled.settledAt - started) / 1000;
  const stats = settled.latenciesMs.sort((a, b) => a - b);
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
    ...(scrapedBefore && scrapedAfter && serverSide(scrapedBefore, scrapedAfter)),
    maxCommitMsSampled: round(settled.maxCommitMs, 1),
    ...(reads && { readLatencyMs: { p50: reads.latency.p50, p99: reads.latency.p99, requests: reads.requests.total } }),
    statusCodes,
    errors: loads.reduce((sum, l) => sum + l.errors + l.timeouts, 0),
    expected: { unique, duplicates },
    observed,
    correct: observed.unique === unique && observed.duplicates === duplicates,
  };
}
