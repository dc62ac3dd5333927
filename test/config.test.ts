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
  t.equal(loadConfig([], {}).pgWriteConnections, 'auto', 'PG_WRITE_CONNECTIONS is auto by default');
  t.equal(loadConfig([], { PG_WRITE_CONNECTIONS: '3' }).pgWriteConnections, 3);
  for (const raw of ['0', '17', 'two', 'Auto', '1.5']) {
    t.throws(() => loadConfig([], { PG_WRITE_CONNECTIONS: raw }), new ConfigError(`PG_WRITE_CONNECTIONS must be auto or an integer from 1 to 16, got "${raw}"`));
  }
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

t.test('retention rules and the dedup window parse as documented', async (t) => {
  const { retention, dedupWindowMs } = loadConfig([], { RETENTION: 'audit.*=365d, debug.*=1d,counted=1000,both.*=30d/500,*=90s', DEDUP_WINDOW: '12h' });
  t.same(retention.map(({ pattern, maxAgeMs, maxEvents }) => [pattern, maxAgeMs, maxEvents]), [
    ['audit.*', 365 * 86_400_000, undefined], ['debug.*', 86_400_000, undefined], ['counted', undefined, 1000],
    ['both.*', 30 * 86_400_000, 500], ['*', 90_000, undefined],
  ]);
  t.equal(dedupWindowMs, 12 * 3_600_000);
  t.ok(retention[0]!.matcher.test('audit.eu.orders') && !retention[0]!.matcher.test('xaudit.eu'), '* is any run, the rest literal');
  t.ok(retention[4]!.matcher.test(''), 'a lone * matches every topic');
  t.same(loadConfig([], {}).retention, [], 'unset: keep forever');
  t.equal(loadConfig([], {}).dedupWindowMs, undefined, 'the window defaults to forever');
  t.equal(loadConfig(['--dedup-window', 'FOREVER'], {}).dedupWindowMs, undefined);
});

t.test('bad retention settings are refused with the setting and the rule named', async (t) => {
  t.throws(() => loadConfig([], { RETENTION: 'orders' }), /RETENTION rule 1: "orders" is not pattern=limit/);
  t.throws(() => loadConfig([], { RETENTION: 'a=1d,=2d' }), /RETENTION rule 2: "=2d" has no topic pattern/);
  t.throws(() => loadConfig([], { RETENTION: 'a=30' + 'x' }), /RETENTION rule 1: "30x" is not an age/);
  t.throws(() => loadConfig([], { RETENTION: 'a=0' }), /not a count of events: a whole number of at least 1/);
  t.throws(() => loadConfig([], { RETENTION: 'a=0s' }), /"0s" is not an age/);
  t.throws(() => loadConfig([], { RETENTION: 'a=1d/2d' }), /"2d" is not a count/);
  t.throws(() => loadConfig([], { RETENTION: 'a=1d/5/6' }), /is not a limit/);
  t.throws(() => loadConfig(['--retention', 'a=1.5h'], {}), { name: 'ConfigError', message: /--retention rule 1: "1.5h" is not an age/ });
  t.throws(() => loadConfig([], { DEDUP_WINDOW: 'never' }), /DEDUP_WINDOW: "never" is not an age/);
  t.throws(() => loadConfig([], { DEDUP_HOT_KEYS: '3' }), /DEDUP_HOT_KEYS must be an integer from 16/);
});
