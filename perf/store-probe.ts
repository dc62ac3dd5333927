import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { histogramIn, observedBetween, type HistogramCounts } from './histogram.js';
import type { LogLine } from './server.js';

/*
 * What the grown and retention scenarios observe of a SQLite server from outside: its files, the
 * `store` object of /stats when the server has one, and its commit-duration histogram from /metrics.
 */

export interface StoreFiles {
  dbBytes: number;
  walBytes: number;
  /** The sealed dedup segments, `${dbPath}.keys/`. */
  keysBytes: number;
  totalBytes: number;
}

const size = (path: string) => statSync(path, { throwIfNoEntry: false })?.size ?? 0;

function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += size(join(entry.parentPath, entry.name));
  }
  return total;
}

export function storeFiles(dbPath: string): StoreFiles {
  const keys = `${dbPath}.keys`;
  const files = { dbBytes: size(dbPath), walBytes: size(`${dbPath}-wal`), keysBytes: statSync(keys, { throwIfNoEntry: false })?.isDirectory() ? dirBytes(keys) : 0 };
  return { ...files, totalBytes: files.dbBytes + files.walBytes + files.keysBytes };
}

/** /stats.store (issue 12), when the server reports it. */
export interface StoreStats {
  disk_bytes?: number;
  dedup_keys?: number;
  index_memory_bytes?: number;
  hot_keys?: number;
  segments?: number;
  last_purge?: { at: string; events: number; duration_ms: number; total?: number } | null;
}

export async function storeStats(url: string): Promise<StoreStats | undefined> {
  const stats = (await (await fetch(`${url}/stats`)).json()) as { store?: StoreStats };
  return stats.store;
}

/** The commit-duration histogram of the server at `url`, as it stands. */
export async function commitHistogram(url: string): Promise<HistogramCounts> {
  return histogramIn(await (await fetch(`${url}/metrics`)).text(), 'aggregator_commit_duration_seconds');
}

/**
 * The commits between two scrapes: how many took longer than `limitMs` (exact, if `limitMs` is a bucket
 * bound: 50 ms is) and the bound of the longest one's bucket ("≤ 25 ms", or "> 1000 ms" past the last).
 * The histogram is the server's whole life, so it sees every commit, where sampling /stats misses most.
 */
export function commitsBetween(before: HistogramCounts, after: HistogramCounts, limitMs: number) {
  const { count, within, boundHolding, lastBound } = observedBetween(before, after);
  const longest = boundHolding(1);
  return {
    commits: count,
    overLimit: count - within(limitMs),
    longest: longest === Infinity ? `> ${lastBound} ms` : `≤ ${longest} ms`,
  };
}

/** The server's log lines that speak of its dedup index or retention, with the time after spawn. */
export const indexLogLines = (log: LogLine[]) => log
  .filter((line) => /index|key|segment|dedup|purge|retention|seal|rebuil/i.test(line.msg))
  .map(({ atMs, msg, level: _level, time: _time, pid: _pid, hostname: _hostname, name: _name, ...fields }) => ({ atMs, msg, ...fields }));

/** When the server logged that it listens, ms after spawn: start-up before HTTP, the rest is waiting for the consumer. */
export const listeningAtMs = (log: LogLine[]) => log.find((line) => line.msg === 'aggregator listening')?.atMs;

export const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

/** One measure against its target, for the scenario's table. */
export interface TargetRow {
  measure: string;
  measured: string;
  target: string;
  met: boolean | '—';
}

export function printTargets(title: string, rows: TargetRow[]): void {
  console.log(`\n${title}`);
  console.table(rows);
}
