#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { runLoad, type LoadReport } from './clients/load-publisher.js';
import { subscribe as follow } from './clients/subscriber.js';
import { SyntheticEvents, type IdKind } from './clients/synthetic-events.js';

const USAGE = `usage:
  pubsub-aggregator serve [server flags, see --help of serve]
  pubsub-aggregator publish [options]
  pubsub-aggregator subscribe [options]

publish options:
  --url URL            aggregator base URL; repeat or comma-separate for several (default http://127.0.0.1:8080)
  --events N           events to send (default 5000), or
  --duration S         seconds to run
  --rate R             events per second overall (default 0: as fast as acks allow)
  --duplicates X       share of re-sent events, 0-1 (default 0.2)
  --batch N            events per request (default 1)
  --topics N           topics to spread events over (default 8)
  --ids v4|v7          random or time-ordered event ids (default v4)
  --concurrency N      requests in flight (default 10)
  --timeout-ms N       per-request timeout (default 10000)
  --max-attempts N     tries per request before giving up (default 20)
  --token T            bearer token (default: $AUTH_TOKEN)
  --gzip               send bodies with Content-Encoding: gzip
  --quiet              no progress bar

subscribe options (prints each event as one line of JSON; reconnects and resumes by itself):
  --url URL            aggregator base URL (default http://127.0.0.1:8080)
  --topic T            only this topic; repeat for several (default: all)
  --from F             earliest | latest | <seq> | <RFC 3339 time> (default latest: only new events)
  --consumer NAME      start from this durable consumer's committed position (over its topics)
  --until T            stop before the first event received after this RFC 3339 time, and exit
  --token T            bearer token (default: $AUTH_READ_TOKEN or $AUTH_TOKEN)`;

async function publish(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      url: { type: 'string', multiple: true }, events: { type: 'string' }, duration: { type: 'string' },
      rate: { type: 'string' }, duplicates: { type: 'string' }, batch: { type: 'string' }, topics: { type: 'string' },
      ids: { type: 'string' }, concurrency: { type: 'string' }, 'timeout-ms': { type: 'string' },
      'max-attempts': { type: 'string' }, token: { type: 'string' }, quiet: { type: 'boolean' }, gzip: { type: 'boolean' },
    },
  });
  const number = (raw: string | undefined, fallback: number, name: string, min = 0, max = Infinity): number => {
    const value = raw === undefined ? fallback : Number(raw);
    if (!Number.isFinite(value) || value < min || value > max) throw new Error(`--${name} must be a number from ${min} to ${max}`);
    return value;
  };
  const ids = values.ids ?? 'v4';
  if (ids !== 'v4' && ids !== 'v7') throw new Error('--ids must be v4 or v7');
  const durationSeconds = values.duration === undefined ? undefined : number(values.duration, 0, 'duration', 0.1);
  const events = durationSeconds === undefined ? number(values.events, 5_000, 'events', 1) : undefined;

  const source = new SyntheticEvents({
    duplicateRatio: number(values.duplicates, 0.2, 'duplicates', 0, 1),
    topics: number(values.topics, 8, 'topics', 1),
    idKind: ids as IdKind,
  });
  const urls = (values.url ?? ['http://127.0.0.1:8080']).flatMap((u) => u.split(',')).map((u) => u.replace(/\/+$/, ''));
  const token = values.token ?? process.env.AUTH_TOKEN;
  const showProgress = !values.quiet && process.stderr.isTTY;
  const report = await runLoad(
    source,
    {
      urls, events, durationSeconds,
      rate: number(values.rate, 0, 'rate'),
      batchSize: number(values.batch, 1, 'batch', 1, 10_000),
      concurrency: number(values.concurrency, 10, 'concurrency', 1, 1_000),
      timeoutMs: number(values['timeout-ms'], 10_000, 'timeout-ms', 1),
      maxAttempts: number(values['max-attempts'], 20, 'max-attempts', 1),
      ...(token ? { token } : {}),
      gzip: values.gzip ?? false,
    },
    (r) => showProgress && process.stderr.write(`\r${progressLine(r, events, durationSeconds)}`),
  );
  if (showProgress) process.stderr.write(`\r${progressLine(report, events, durationSeconds)}\n`);
  console.log(JSON.stringify({ ...report, eventsPerSecond: Math.round(report.acked / report.seconds), generated: {
    unique: source.uniqueCount, duplicates: source.duplicateCount,
  } }));
  if (report.failed > 0) process.exitCode = 1;
}

async function subscribe(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      url: { type: 'string' }, topic: { type: 'string', multiple: true }, from: { type: 'string' },
      consumer: { type: 'string' }, until: { type: 'string' }, token: { type: 'string' },
    },
  });
  const stop = new AbortController();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => stop.abort());
  const stream = follow({
    url: values.url ?? 'http://127.0.0.1:8080',
    topics: values.topic ?? [],
    from: values.from ?? 'latest',
    consumer: values.consumer,
    until: values.until,
    token: values.token ?? process.env.AUTH_READ_TOKEN ?? process.env.AUTH_TOKEN,
    signal: stop.signal,
    onReconnect: (reason, delayMs) => process.stderr.write(`disconnected (${reason}); reconnecting in ${Math.round(delayMs)} ms\n`),
  });
  for await (const message of stream) {
    if (message.type === 'event') process.stdout.write(`${message.data}\n`);
    else process.stderr.write(`gap: older events were purged: ${JSON.stringify({ after: message.after, resumed_after: message.resumedAfter })}\n`);
  }
}

function progressLine(r: LoadReport, events: number | undefined, duration: number | undefined): string {
  const done = events ? r.acked / events : Math.min(1, r.seconds / (duration ?? 1));
  const width = 30;
  const bar = '#'.repeat(Math.round(done * width)).padEnd(width, '.');
  const rate = r.seconds > 0 ? Math.round(r.acked / r.seconds) : 0;
  return `[${bar}] ${(done * 100).toFixed(0).padStart(3)}%  sent ${r.sent}  acked ${r.acked}  retried ${r.retries}  failed ${r.failed}  ${rate} ev/s `;
}

const [command, ...rest] = process.argv.slice(2);
if (command === 'publish' && rest.includes('--help')) {
  console.log(USAGE);
} else if (command === 'publish') {
  await publish(rest).catch((error: Error) => {
    console.error(`publish: ${error.message}\n\n${USAGE}`);
    process.exit(2);
  });
} else if (command === 'subscribe' && rest.includes('--help')) {
  console.log(USAGE);
} else if (command === 'subscribe') {
  await subscribe(rest).catch((error: Error) => {
    console.error(`subscribe: ${error.message}`);
    process.exit(2);
  });
} else if (command === 'serve') {
  process.argv.splice(2, 1);
  await import('./main.js');
} else {
  console.error(USAGE);
  process.exit(command === undefined || command === '--help' ? 0 : 2);
}
