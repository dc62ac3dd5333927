import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort } from '../scripts/free-port.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
/** The in-memory ceiling (perf/ceiling-server.ts) instead of the aggregator. */
export const CEILING = fileURLToPath(new URL('./ceiling-server.js', import.meta.url));

export interface ServerOptions {
  /** What to run instead of the aggregator (CEILING). */
  entry?: string;
  /** How long start-up may take: a grown store may read its whole index first. */
  readyTimeoutMs?: number;
  /** Keep the server's log (at LOG_LEVEL info unless the settings say otherwise) for `log()`. */
  keepLog?: boolean;
}

export interface PerfServer {
  url: string;
  pid: number;
  /** From spawn to the first /readyz 200, in ms (polled every 20 ms). */
  startupMs: number;
  /** The server process's resident memory, in bytes (Linux). */
  rssBytes(): number;
  /** Its log lines so far (with keepLog), parsed, with `atMs`: ms after spawn. */
  log(): LogLine[];
  /** SIGTERM; resolves once the process has exited (after its clean shutdown). */
  stop(): Promise<void>;
  /** kill -9: no shutdown work at all, as a crash or an OOM kill would leave the store. */
  crash(): Promise<void>;
}

export interface LogLine {
  atMs: number;
  msg: string;
  [field: string]: unknown;
}

/** The real server (or `entry`) as a child process with the given settings (environment), ready when /readyz says so. */
export async function startServer(settings: Record<string, string>, { entry = MAIN, readyTimeoutMs = 60_000, keepLog = false }: ServerOptions = {}): Promise<PerfServer> {
  const port = await freePort();
  // PERF_PROFILE_DIR=<dir>: each server writes V8 CPU profiles of its threads there on exit (--cpu-prof).
  const profile = process.env.PERF_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PERF_PROFILE_DIR}`] : [];
  const spawnedAt = Date.now();
  const started = performance.now();
  const child = spawn(process.execPath, [...profile, entry], {
    env: { ...process.env, LOG_LEVEL: keepLog ? 'info' : 'warn', ...settings, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', keepLog ? 'pipe' : 'ignore', 'inherit'],
  });
  const lines: LogLine[] = [];
  if (child.stdout) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const parsed = JSON.parse(line) as { time?: number; msg?: string };
        lines.push({ ...parsed, msg: parsed.msg ?? '', atMs: (parsed.time ?? Date.now()) - spawnedAt });
      } catch {
        lines.push({ msg: line, atMs: Date.now() - spawnedAt });
      }
    });
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  for (const deadline = Date.now() + readyTimeoutMs; ; ) {
    const ready = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ready) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error('the server did not become ready');
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    url,
    pid: child.pid!,
    startupMs: performance.now() - started,
    rssBytes: () => processRss(child.pid!),
    log: () => lines,
    stop: () => (child.kill('SIGTERM'), exited),
    crash: () => (child.kill('SIGKILL'), exited),
  };
}

function processRss(pid: number): number {
  const kib = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kib) * 1024;
}
