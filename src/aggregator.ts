import type { FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import { buildApp } from './http/app.js';
import { TokenRegistry } from './http/access/token-registry.js';
import type { Logger } from './logger.js';
import type { CommittedMessage } from './pipeline/writer-protocol.js';
import { Pipeline } from './pipeline/pipeline.js';
import { listenForCommits, openEventReader } from './store/open.js';
import { CommitSignal } from './stream/commit-signal.js';

export interface Aggregator {
  app: FastifyInstance;
  pipeline: Pipeline;
  /** Reads AUTH_TOKENS_FILE again (SIGHUP); false when it was refused (the tokens in force stay) or there is none. */
  reloadTokens(reason: string): boolean;
  /** Raised at every commit, this replica's or (shared store) another's, with the topics it touched. */
  commits: CommitSignal;
  /** Stops accepting, lets in-flight publishes finish, drains the ring into the store and closes it. */
  close(): Promise<void>;
}

/** Wires the pipeline: HTTP (src/http) → ring (src/ring) → writer (workers/) → store (src/store). */
export async function createAggregator(config: Config, log: Logger): Promise<Aggregator> {
  // First: a missing or malformed tokens file stops the start (TokenFileError) before anything runs.
  const tokens = config.authTokensFile ? new TokenRegistry(config.authTokensFile, log) : undefined;
  const pipeline = await Pipeline.start(config, log);
  // Opened after the consumer has created or migrated the database.
  const reader = await openEventReader(config, log).catch(async (error: unknown) => {
    await pipeline.stop();
    throw error;
  });
  const commits = new CommitSignal();
  pipeline.on('commit', (message: CommittedMessage) => commits.notify(message.topicEvents.map(([topic]) => topic)));
  // Other replicas' commits, on a shared store.
  const stopListening = await listenForCommits(config, (topics) => commits.notify(topics), log);
  const app = buildApp({ config, log, pipeline, reader, commits, tokens });
  tokens?.watch();
  return {
    app,
    pipeline,
    commits,
    reloadTokens: (reason) => tokens?.reload(reason) ?? false,
    async close() {
      tokens?.close();
      await app.close();
      await stopListening();
      await pipeline.stop();
      await reader.close();
    },
  };
}
