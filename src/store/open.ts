import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { StoreError, StoreOpenError, type EventReader, type EventStore } from './store.js';

/** The settings that choose and open the writer, and the reader. */
export type StoreConfig = Pick<Config,
  'store' | 'dbPath' | 'databaseUrl' | 'pgStatementTimeoutMs' | 'pgWriteConnections' | 'replicaId' | 'synchronous' | 'dbMaxBytes' | 'batchMax' | 'retention' | 'dedupWindowMs' | 'dedupHotKeys'>;
export type ReaderConfig = Pick<Config, 'store' | 'dbPath' | 'databaseUrl' | 'pgStatementTimeoutMs' | 'replicaId' | 'maxPageBytes'>;

/*
 * The one place that turns settings into a store: the writer opens the writer, the HTTP side the
 * reader. Each store states its own limits here. A backend's modules are imported only when it is
 * chosen: a SQLite server never loads the PostgreSQL driver, nor the other way round.
 */

/**
 * The consumer's store, its only writer. Errors leave a worker through structured clone, which keeps only
 * plain Error fields, so the message itself says what failed — and, for PostgreSQL, says it without the
 * host and port the driver names (those go to the log), since the message reaches /readyz.
 */
export async function openEventStore(config: StoreConfig, log: Logger): Promise<EventStore> {
  if (config.store === 'sqlite') {
    const { SqliteEventStore } = await import('./sqlite/sqlite-store.js');
    try {
      const store = new SqliteEventStore(config.dbPath, {
        synchronous: config.synchronous, maxBytes: config.dbMaxBytes, hotKeys: config.dedupHotKeys,
        retention: { rules: config.retention, dedupWindowMs: config.dedupWindowMs },
        onSegmentRebuilt: (rebuilt) => log.warn(rebuilt, 'dedup index segment found damaged and rebuilt from the rows; check the disk'),
      });
      log.info(store.indexLoad, 'dedup index loaded');
      return store;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new StoreOpenError(`cannot open the database ${config.dbPath}: ${(error as Error).message}${code ? ` (${String(code)})` : ''}`);
    }
  }
  const { MAX_PG_BATCH } = await import('./postgres/postgres-schema.js');
  const { PostgresEventStore, storeError } = await import('./postgres/postgres-store.js');
  if (config.batchMax > MAX_PG_BATCH) {
    throw new StoreOpenError(`STORE=postgres takes at most BATCH_MAX=${MAX_PG_BATCH} events per batch (seq holds the position in 14 bits)`);
  }
  try {
    return await PostgresEventStore.open(config.databaseUrl, config.replicaId,
      { rules: config.retention, dedupWindowMs: config.dedupWindowMs }, config.pgStatementTimeoutMs, config.pgWriteConnections);
  } catch (error) {
    log.error({ err: error }, 'cannot open PostgreSQL');
    // The code says whether the server is away (a restarted worker waits for it) or refused (a bug to report).
    throw new StoreError('cannot open PostgreSQL (the log says why)', storeError(error).code);
  }
}

/** The HTTP side's reader; opened after the consumer has created or migrated the store. */
export async function openEventReader(config: ReaderConfig, log: Logger): Promise<EventReader> {
  if (config.store === 'postgres') {
    const { PostgresEventReader } = await import('./postgres/postgres-reader.js');
    return new PostgresEventReader(config.databaseUrl, config.replicaId, config.maxPageBytes, config.pgStatementTimeoutMs);
  }
  const { SqliteWorkerReader } = await import('./sqlite/sqlite-worker-reader.js');
  return SqliteWorkerReader.open({ dbPath: config.dbPath, maxPageBytes: config.maxPageBytes }, log);
}

/**
 * Other writers' commits, on a shared store: `onCommit` is called for each (a wake-up, no data); closed by
 * the returned function. SQLite has one writer, whose commits the pipeline reports itself.
 */
export async function listenForCommits(
  config: ReaderConfig, onCommit: (topics: readonly string[] | undefined) => void, log: Logger,
): Promise<() => Promise<void>> {
  if (config.store === 'sqlite') return () => Promise.resolve();
  const { PostgresCommitListener } = await import('./postgres/postgres-commit-listener.js');
  const listener = new PostgresCommitListener(config.databaseUrl, config.replicaId, onCommit, log, config.pgStatementTimeoutMs);
  return () => listener.close();
}
