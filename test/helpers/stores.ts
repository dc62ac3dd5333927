import Database from 'better-sqlite3';
import { join } from 'node:path';
import pg from 'pg';
import type { Test } from 'tap';
import type { Config } from '../../src/config.js';
import { freshDatabase } from '../../scripts/pg-cluster.js';

/** One kind of store as the shared behavioural suite sees it. */
export interface TestStore {
  /** Settings for an aggregator on a new, empty store of this kind. */
  fresh(t: Test): Promise<Pick<Config, 'store' | 'dbPath' | 'databaseUrl'>>;
  /** The same settings as a spawned server's environment. */
  env(settings: Pick<Config, 'store' | 'dbPath' | 'databaseUrl'>): Record<string, string>;
  /** Holds the store's write lock from outside, as a stalled disk or server would; resolves to "let go". */
  blockWrites(settings: Pick<Config, 'dbPath' | 'databaseUrl'>): Promise<() => Promise<void>>;
}

export const sqliteStore: TestStore = {
  fresh: async (t) => ({ store: 'sqlite', dbPath: join(t.testdir(), 'aggregator.db'), databaseUrl: '' }),
  env: ({ dbPath }) => ({ STORE: 'sqlite', DB_PATH: dbPath }),
  async blockWrites({ dbPath }) {
    const blocker = new Database(dbPath);
    blocker.exec('BEGIN IMMEDIATE');
    return async () => {
      blocker.exec('ROLLBACK');
      blocker.close();
    };
  },
};

export const postgresStore: TestStore = {
  fresh: async (t) => ({ store: 'postgres', dbPath: join(t.testdir(), 'unused.db'), databaseUrl: await freshDatabase() }),
  env: ({ databaseUrl }) => ({ STORE: 'postgres', DATABASE_URL: databaseUrl }),
  async blockWrites({ databaseUrl }) {
    const blocker = new pg.Client(databaseUrl);
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE events IN EXCLUSIVE MODE');
    return async () => {
      await blocker.query('ROLLBACK');
      await blocker.end();
    };
  },
};
