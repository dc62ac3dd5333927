import { join } from 'node:path';
import pg from 'pg';
import type { IncomingEvent } from '../src/event.js';
import { EventSource, type IdKind } from '../src/publisher/event-source.js';
import { PostgresEventStore } from '../src/store/postgres/postgres-store.js';
import { SqliteEventStore } from '../src/store/sqlite/sqlite-store.js';
import type { EventStore } from '../src/store/store.js';
import { freshDatabase } from '../scripts/pg-cluster.js';
import { CEILING, startServer, type PerfServer } from './server.js';

export const BATCH = 1_000;
/** Direct connections of the PostgreSQL baseline, as several replicas' consumers would hold. */
const PG_BASELINE_CONNECTIONS = 4;

/** What a scenario runs against: one SQLite server, or N replicas on one PostgreSQL database. */
export interface Deployment {
  urls: string[];
  /** Store-wide unique/duplicate counters, read exactly (not from a replica's cached snapshot). */
  counters(): Promise<{ unique: number; duplicates: number }>;
  stop(): Promise<void>;
}

/** Where a run's deployments and baseline live: a temp dir for SQLite, a PostgreSQL server for postgres. */
export interface Target {
  store: 'sqlite' | 'postgres';
  /** A store of this kind with `count` events committed directly (no HTTP, no ring), `batch` a transaction; returns events/s. */
  fill(name: string, count: number, idKind: IdKind, onProgress?: (done: number) => void, batch?: number): Promise<number>;
  deploy(name: string, replicas: number): Promise<Deployment>;
}

function storeEvents(count: number, idKind: IdKind, batch: number): IncomingEvent[][] {
  const source = new EventSource({ duplicateRatio: 0, topics: 16, idKind, source: 'perf' });
  const receivedAt = new Date().toISOString();
  return Array.from({ length: Math.ceil(count / batch) }, (_, i) =>
    source.batch(Math.min(batch, count - i * batch)).map((e) => ({
      topic: e.topic, eventId: e.event_id, timestamp: e.timestamp, source: e.source, payload: JSON.stringify(e.payload), receivedAt,
    })),
  );
}

/** Commits `count` events through `stores` in parallel (one sequential committer each); returns events/s. */
async function fillStores(stores: EventStore[], count: number, idKind: IdKind, onProgress?: (done: number) => void, batch = BATCH): Promise<number> {
  let elapsed = 0;
  // Generate in slices so memory stays flat while prefilling millions.
  for (let done = 0; done < count; done += 100_000) {
    const batches = storeEvents(Math.min(100_000, count - done), idKind, batch);
    const started = performance.now();
    await Promise.all(stores.map(async (store, s) => {
      for (let i = s; i < batches.length; i += stores.length) await store.commitBatch(batches[i]!, { epoch: 'perf', position: done + i });
    }));
    elapsed += performance.now() - started;
    onProgress?.(Math.min(count, done + 100_000));
  }
  await Promise.all(stores.map((store) => store.close()));
  return Math.round(count / (elapsed / 1000));
}

const statsCounters = async (url: string) => {
  const stats = (await (await fetch(`${url}/stats`)).json()) as { unique_processed: number; duplicate_dropped: number };
  return { unique: stats.unique_processed, duplicates: stats.duplicate_dropped };
};

/** One server as a deployment. */
export const serverDeployment = (server: PerfServer): Deployment => ({ urls: [server.url], counters: () => statsCounters(server.url), stop: server.stop });

/** The in-memory ceiling (perf/ceiling-server.ts), deployed like a one-replica aggregator. */
export const deployCeiling = async () => serverDeployment(await startServer({}, { entry: CEILING }));

/** The SQLite target also names where each deployment's database file is. */
export type SqliteTarget = Target & { path(name: string): string };

export function sqliteTarget(dir: string): SqliteTarget {
  const path = (name: string) => join(dir, `${name}.db`);
  return {
    store: 'sqlite',
    path,
    fill: (name, count, idKind, onProgress, batch) =>
      fillStores([new SqliteEventStore(path(name), { synchronous: 'normal', maxBytes: 0 })], count, idKind, onProgress, batch),
    async deploy(name, replicas) {
      if (replicas !== 1) throw new Error('the SQLite store is embedded: one server per database (--replicas 1)');
      return serverDeployment(await startServer({ STORE: 'sqlite', DB_PATH: path(name) }));
    },
  };
}

export function postgresTarget(serverUrl: string): Target {
  const databases = new Map<string, Promise<string>>();
  const database = (name: string) => {
    if (!databases.has(name)) databases.set(name, freshDatabase(serverUrl));
    return databases.get(name)!;
  };
  return {
    store: 'postgres',
    async fill(name, count, idKind, onProgress, batch) {
      const url = await database(name);
      const stores = await Promise.all(Array.from({ length: PG_BASELINE_CONNECTIONS }, (_, i) => PostgresEventStore.open(url, `fill-${i}`)));
      return fillStores(stores, count, idKind, onProgress, batch);
    },
    async deploy(name, replicas) {
      const url = await database(name);
      const servers: PerfServer[] = await Promise.all(Array.from({ length: replicas }, (_, i) =>
        startServer({ STORE: 'postgres', DATABASE_URL: url, REPLICA_ID: `perf-${i + 1}` })));
      return {
        urls: servers.map((s) => s.url),
        async counters() {
          const client = new pg.Client(url);
          await client.connect();
          try {
            const { rows: [row] } = await client.query<{ unique: string; duplicates: string }>(
              'SELECT coalesce(sum(unique_processed), 0) AS unique, coalesce(sum(duplicate_dropped), 0) AS duplicates FROM replica_counters');
            return { unique: Number(row!.unique), duplicates: Number(row!.duplicates) };
          } finally {
            await client.end();
          }
        },
        stop: async () => void (await Promise.all(servers.map((s) => s.stop()))),
      };
    },
  };
}
