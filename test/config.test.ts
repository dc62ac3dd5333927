import t from 'tap';
import { ConfigError, loadConfig } from '../src/config.js';
import { formatUptime } from '../src/http/routes/stats.js';

t.test('defaults run with no configuration at all', async (t) => {
  t.match(loadConfig([], {}), {
    port: 8080, host: '0.0.0.0', dbPath: './data/aggregator.db', logLevel: 'info', ringBytes: 64 * 1024 * 1024,
    batchMax: 1000, batchLingerMs: 0, synchronous: 'normal', maxPayloadBytes: 65536,
  });
});

t.test('a flag wins over its environment variable, which wins over the default', async (t) => {
  const env = { PORT: '9000', DB_PATH: '/tmp/env.db', LOG_LEVEL: 'WARN', DB_SYNCHRONOUS: 'full' };
  t.match(loadConfig([], env), { port: 9000, dbPath: '/tmp/env.db', logLevel: 'warn', synchronous: 'full' });
  t.match(loadConfig(['--port', '9100', '--db-path=/tmp/flag.db'], env), { port: 9100, dbPath: '/tmp/flag.db' });
});

t.test('bad values are refused with the setting named', async (t) => {
  t.throws(() => loadConfig([], { PORT: 'eighty' }), new ConfigError('PORT must be an integer from 0 to 65535, got "eighty"'));
  t.throws(() => loadConfig(['--ring-bytes', '100000'], {}), /--ring-bytes must be a power of two/);
  t.throws(() => loadConfig([], { DB_SYNCHRONOUS: 'sometimes' }), /DB_SYNCHRONOUS must be one of normal, full/);
  t.throws(() => loadConfig([], { DB_PATH: '' }), /DB_PATH must not be empty/);
  t.throws(() => loadConfig(['--no-such-flag', 'x'], {}), { name: 'ConfigError', message: /Unknown option '--no-such-flag'/ });
});

t.test('uptime reads like a duration', async (t) => {
  t.equal(formatUptime(0), '0s');
  t.equal(formatUptime(54), '54s');
  t.equal(formatUptime(3_600), '1h0m0s');
  t.equal(formatUptime(90_061), '1d1h1m1s');
});
