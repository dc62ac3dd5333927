import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';

/*
 * Throwaway PostgreSQL servers for the tests and the perf harness alike. It lives in scripts/, beside the
 * shell script it drives, rather than in test/ (perf must not depend on the tests) or src/ (not product).
 * Compiled to dist/scripts/, so the script is two levels up from here.
 */
const SCRIPT = fileURLToPath(new URL('../../scripts/pg-test-cluster.sh', import.meta.url));
const run = promisify(execFile);

/** A throwaway PostgreSQL server of scripts/pg-test-cluster.sh, which fault tests can stop and start. */
export interface PgCluster {
  url: string;
  /** Stops the server, keeping its data. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** SIGSTOPs the server and every backend: connections stay open and nothing answers (a hung server). */
  freeze(): Promise<void>;
  /** SIGCONTs what freeze stopped: the server goes on where it was. */
  thaw(): Promise<void>;
  /** Stops the server and removes its data. */
  remove(): Promise<void>;
}

export async function startCluster(): Promise<PgCluster> {
  const url = (await run('bash', [SCRIPT, 'start'])).stdout.trim();
  const script = async (action: string) => void (await run('bash', [SCRIPT, action, url]));
  const reap = () => execFileSync('bash', [SCRIPT, 'stop', url]);
  process.once('exit', reap);
  return {
    url,
    pause: () => script('pause'),
    resume: () => script('resume'),
    freeze: () => script('freeze'),
    thaw: () => script('thaw'),
    remove: async () => {
      process.off('exit', reap);
      await script('stop');
    },
  };
}

let shared: Promise<string> | undefined;

/**
 * The server the tests use: PG_TEST_URL (CI starts one with the same script), or else a cluster of this
 * test process's own. The PostgreSQL tests never skip for want of a server.
 */
export function pgTestUrl(): Promise<string> {
  const url = process.env.PG_TEST_URL;
  if (url) return Promise.resolve(url);
  shared ??= startCluster().then((cluster) => cluster.url);
  return shared;
}

/** A new, empty database on the test server, so each test starts from a clean store. */
export async function freshDatabase(serverUrl?: string): Promise<string> {
  const url = serverUrl ?? (await pgTestUrl());
  const name = `test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client(url);
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const database = new URL(url);
  database.pathname = `/${name}`;
  return database.toString();
}
