import { join } from 'node:path';
import type { Test } from 'tap';
import { createAggregator, type Aggregator } from '../../src/aggregator.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { clientOver, parseBody, type TestClient } from './client.js';
import { eventually } from './eventually.js';

export interface TestAggregator extends Aggregator, TestClient {
  config: Config;
  /** Waits until the queue is empty and every queued event is committed. */
  settle(): Promise<void>;
}

/** A real aggregator (real worker thread, real SQLite file in a temp dir) driven through Fastify inject. */
export async function startAggregator(t: Test, overrides: Partial<Config> = {}): Promise<TestAggregator> {
  const dbPath = overrides.dbPath ?? join(t.testdir(), 'aggregator.db');
  const config: Config = { ...loadConfig([], {}), logLevel: 'silent', ...overrides, dbPath };
  const aggregator = await createAggregator(config, createLogger(config.logLevel, 'test'));
  t.teardown(() => aggregator.close());
  const { app, pipeline } = aggregator;
  const client = clientOver(async (method, url, body) => {
    const res = await app.inject({ method, url, ...(body === undefined ? {} : { payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
    return { status: res.statusCode, body: parseBody(res.headers['content-type'], res.body), headers: res.headers };
  });
  return {
    ...aggregator,
    ...client,
    config,
    async settle() {
      await eventually(() => pipeline.stats(), {
        what: 'the queue to settle',
        timeout: 10_000,
        interval: 5,
        until: (stats) => stats.queueDepth === 0 && stats.counters.uniqueProcessed + stats.counters.duplicateDropped === stats.received,
      });
    },
  };
}

export async function waitUntilReady(agg: TestAggregator): Promise<void> {
  await eventually(() => agg.pipeline.notReadyReason(), { what: 'the consumer to come back', timeout: 10_000, interval: 10, until: (reason) => reason === undefined });
}
