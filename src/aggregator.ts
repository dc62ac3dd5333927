import type { FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import { buildApp } from './http/app.js';
import type { Logger } from './logger.js';
import { Pipeline } from './pipeline/pipeline.js';
import { openEventReader } from './store/open.js';

export interface Aggregator {
  app: FastifyInstance;
  pipeline: Pipeline;
  /** Stops accepting, lets in-flight publishes finish, drains the ring into the store and closes it. */
  close(): Promise<void>;
}

/** Wires the pipeline: HTTP (src/http) → ring (src/ring) → consumer worker (workers/) → store (src/store). */
export async function createAggregator(config: Config, log: Logger): Promise<Aggregator> {
  const pipeline = await Pipeline.start(config, log);
  // Opened after the consumer has created or migrated the database.
  const reader = await openEventReader(config, log).catch(async (error: unknown) => {
    await pipeline.stop();
    throw error;
  });
  const app = buildApp({ config, log, pipeline, reader });
  return {
    app,
    pipeline,
    async close() {
      await app.close();
      await pipeline.stop();
      await reader.close();
    },
  };
}
