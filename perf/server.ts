import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from '../scripts/free-port.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
/** The in-memory ceiling (perf/ceiling-server.ts) instead of the aggregator. */
export const CEILING = fileURLToPath(new URL('./ceiling-server.js', import.meta.url));

export interface PerfServer {
  url: string;
  /** The server process's resident memory, in bytes (Linux). */
  rssBytes(): number;
  stop(): Promise<void>;
}

/** The real server (or `entry`) as a child process with the given settings (environment), ready when /readyz says so. */
export async function startServer(settings: Record<string, string>, entry = MAIN): Promise<PerfServer> {
  const port = await freePort();
  // PERF_PROFILE_DIR=<dir>: each server writes V8 CPU profiles of its threads there on exit (--cpu-prof).
  const profile = process.env.PERF_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PERF_PROFILE_DIR}`] : [];
  const child = spawn(process.execPath, [...profile, entry], {
    env: { ...process.env, LOG_LEVEL: 'warn', ...settings, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  for (const deadline = Date.now() + 60_000; ; ) {
    const ready = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ready) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('the server did not become ready');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url, rssBytes: () => processRss(child.pid!), stop: () => (child.kill('SIGTERM'), exited) };
}

function processRss(pid: number): number {
  const kib = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kib) * 1024;
}
