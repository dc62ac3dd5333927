import { join } from 'node:path';
import type { Test } from 'tap';
import { createAggregator, type Aggregator } from '../../src/aggregator.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import type { TestEvent } from './events.js';

export interface TestAggregator extends Aggregator {
  config: Config;
  publish(body: unknown, query?: string): Promise<{ statusCode: number; body: any; headers: Record<string, unknown> }>;
  get(url: string): Promise<any>;
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
  return {
    ...aggregator,
    config,
    async publish(body, query = '') {
      const res = await app.inject({ method: 'POST', url: `/publish${query}`, payload: body as TestEvent });
      return { statusCode: res.statusCode, body: res.json(), headers: res.headers };
    },
    async get(url) {
      const res = await app.inject({ method: 'GET', url });
      if (res.statusCode !== 200) throw new Error(`GET ${url} answered ${res.statusCode}: ${res.body}`);
      return res.json();
    },
    async settle() {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const stats = pipeline.stats();
        const committed = stats.counters.uniqueProcessed + stats.counters.duplicateDropped;
        if (stats.queueDepth === 0 && committed === stats.received) return;
        if (Date.now() > deadline) throw new Error(`queue did not settle: ${JSON.stringify(stats)}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
  };
}

export async function waitUntilReady(agg: TestAggregator): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (agg.pipeline.notReadyReason() !== undefined) {
    if (Date.now() > deadline) throw new Error('the consumer did not come back');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
