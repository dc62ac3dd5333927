import { createAggregator } from './aggregator.js';
import { ConfigError, describeSettings, loadConfig, type Config } from './config.js';
import { TokenFileError } from './http/access/token-file.js';
import { createLogger } from './logger.js';

if (process.argv.includes('--help')) {
  console.log(`pubsub-aggregator: idempotent publish-subscribe log aggregator\n\nflag                       environment              \n${describeSettings()}`);
  process.exit(0);
}

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`configuration error: ${error.message} (see --help)`);
  process.exit(2);
}

const log = createLogger(config.logLevel, 'aggregator');
const aggregator = await createAggregator(config, log).catch((error: unknown) => {
  if (error instanceof TokenFileError) {
    log.fatal({ file: config.authTokensFile }, `cannot start: AUTH_TOKENS_FILE ${error.message}`);
    console.error(`configuration error: AUTH_TOKENS_FILE ${error.message}`);
    process.exit(2);
  }
  log.fatal({ err: error, store: config.store }, `cannot start: ${(error as Error).message}`);
  process.exit(1);
});
const address = await aggregator.app.listen({ port: config.port, host: config.host });
log.info({ address, config }, 'aggregator listening');

// Access tokens are re-read without a restart; a malformed file is refused in the log, the old tokens stay.
// Only then: without a tokens file SIGHUP keeps its default (the process ends), as before.
if (config.authTokensFile) process.on('SIGHUP', () => aggregator.reloadTokens('SIGHUP'));

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: refusing new requests, draining the queue');
    aggregator.close().then(
      () => {
        const { counters } = aggregator.pipeline.stats();
        log.info({ counters }, 'stopped cleanly');
        process.exit(0);
      },
      (error: unknown) => {
        log.fatal({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
