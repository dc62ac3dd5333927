import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { topicProblem } from './event-rules.js';
import { parseDedupWindow, parseRetentionRules, RetentionSyntaxError, type RetentionRule } from './retention.js';


export interface Config {
  port: number;
  host: string;
  /** sqlite: the embedded file at dbPath; postgres: a server shared by replicas, at databaseUrl. */
  store: 'sqlite' | 'postgres';
  dbPath: string;
  /** postgres://user:pass@host:port/db */
  databaseUrl: string;
  /**
   * PostgreSQL: the longest a statement of the writer may run, or one of this replica's sessions may sit idle
   * inside a transaction, before the server ends it (the client gives up a second later).
   */
  pgStatementTimeoutMs: number;
  /**
   * PostgreSQL: connections this replica commits batches on, so as many batches are in flight at once;
   * `auto`: two while no other replica commits to the store, else one.
   */
  pgWriteConnections: number | 'auto';
  /** Names this replica in a shared store; default host name and port. */
  replicaId: string;
  logLevel: string;
  /** Data bytes of the SharedArrayBuffer ring between the HTTP thread and the consumer (a power of two). */
  ringBytes: number;
  /** Most events the writer commits in one SQLite transaction. */
  batchMax: number;
  /** How long the writer waits for more events before committing a batch that is not full. */
  batchLingerMs: number;
  /** Largest accepted request body, in bytes. */
  bodyLimit: number;
  maxEventsPerRequest: number;
  /** Largest payload of one event, as JSON text, in bytes. */
  maxPayloadBytes: number;
  /** Most distinct topics; a publish that would create one more gets 429 TOPIC_LIMIT. */
  maxTopics: number;
  /** Most durable consumers; creating one more gets 429 CONSUMER_LIMIT (it also bounds the lag metric's labels). */
  maxConsumers: number;
  /** How long a publish waits for its commit before it answers 503. */
  ackTimeoutMs: number;
  /** SQLite `synchronous`: `normal` survives a process crash, `full` also a power loss. */
  synchronous: 'normal' | 'full';
  /** Cap on the database size in bytes (0: no cap); past it commits fail with SQLITE_FULL and publishes get 503. */
  dbMaxBytes: number;
  /** Largest /events page in bytes (always at least one event); readers page on with after=. */
  maxPageBytes: number;
  /** Longest time a client may take to send a whole request, or to read a response without progress. */
  requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open. */
  keepAliveTimeoutMs: number;
  /** Most open /events/stream connections; one more gets 503 SUBSCRIBER_LIMIT. */
  maxSubscribers: number;
  /** An idle /events/stream gets a `: keep-alive` comment after this long without a frame. */
  streamReadAheadBytes: number;
  sseKeepAliveMs: number;
  /** Shared secret for `Authorization: Bearer …`; empty: no authentication. */
  authToken: string;
  /** A token for the read routes only (AUTH_READS), so a dashboard never holds the publish token. */
  authReadToken: string;
  /** Whether every route but the health checks needs a token (the read token or the publish token). */
  authReads: boolean;
  /**
   * A JSON file of access tokens scoped to topics (README, "Access control"); empty: none. Replaces the three
   * settings above: every route but the health checks then needs one of its tokens.
   */
  authTokensFile: string;
  /** Retention rules of event bodies (RETENTION, src/retention.ts); empty: keep every event forever. */
  retention: RetentionRule[];
  /** How long a key is remembered as a duplicate (DEDUP_WINDOW); undefined: forever. */
  dedupWindowMs: number | undefined;
  /** Keys the dedup index holds in memory before it seals them into an on-disk segment (SQLite). */
  dedupHotKeys: number;
  /** The resource attribute whose value is an OTLP log record's topic. */
  otlpTopicAttribute: string;
  /** The topic of OTLP log records whose resource lacks otlpTopicAttribute. */
  otlpDefaultTopic: string;
  /** Test-only: makes the first writer fail at a chosen point (workers/faults.ts); empty: never. */
  fault: string;
}

interface Setting {
  env: string;
  flag: string;
  defaultValue: string;
  parse: (raw: string, name: string) => unknown;
}

const integer = (min: number, max: number) => (raw: string, name: string): number => {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
};

const autoOrInteger = (min: number, max: number) => {
  const number = integer(min, max);
  return (raw: string, name: string): number | 'auto' => {
    if (raw === 'auto') return 'auto';
    try {
      return number(raw, name);
    } catch {
      throw new ConfigError(`${name} must be auto or an integer from ${min} to ${max}, got "${raw}"`);
    }
  };
};

const text = (raw: string, name: string): string => {
  if (raw === '') throw new ConfigError(`${name} must not be empty`);
  return raw;
};

const oneOf = (...values: string[]) => (raw: string, name: string): string => {
  const value = raw.toLowerCase();
  if (!values.includes(value)) throw new ConfigError(`${name} must be one of ${values.join(', ')}, got "${raw}"`);
  return value;
};

const topic = (raw: string, name: string): string => {
  const problem = raw.length === 0 || raw.length > 255 ? 'must be 1-255 characters' : topicProblem(raw);
  if (problem !== undefined) throw new ConfigError(`${name} is not a valid topic: ${problem}`);
  return raw;
};

/** Any text; empty means unset. */
const optionalText = (raw: string): string => raw;

const boolean = (raw: string, name: string): boolean => {
  const value = oneOf('true', 'false', '1', '0')(raw, name);
  return value === 'true' || value === '1';
};

const powerOfTwo = (raw: string, name: string): number => {
  const value = integer(1024, 2 ** 30)(raw, name);
  if ((value & (value - 1)) !== 0) throw new ConfigError(`${name} must be a power of two, got ${value}`);
  return value;
};

/** A retention parser whose syntax errors read like every other setting's. */
const retentionSetting = <T>(parse: (raw: string, name: string) => T) => (raw: string, name: string): T => {
  try {
    return parse(raw, name);
  } catch (error) {
    if (error instanceof RetentionSyntaxError) throw new ConfigError(error.message);
    throw error;
  }
};

const SETTINGS: Record<keyof Config, Setting> = {
  port: { env: 'PORT', flag: 'port', defaultValue: '8080', parse: integer(0, 65535) },
  host: { env: 'HOST', flag: 'host', defaultValue: '0.0.0.0', parse: text },
  store: { env: 'STORE', flag: 'store', defaultValue: 'sqlite', parse: oneOf('sqlite', 'postgres') },
  dbPath: { env: 'DB_PATH', flag: 'db-path', defaultValue: './data/aggregator.db', parse: text },
  databaseUrl: { env: 'DATABASE_URL', flag: 'database-url', defaultValue: '', parse: optionalText },
  pgStatementTimeoutMs: {
    env: 'PG_STATEMENT_TIMEOUT_MS', flag: 'pg-statement-timeout-ms', defaultValue: '5000', parse: integer(100, 600_000),
  },
  pgWriteConnections: { env: 'PG_WRITE_CONNECTIONS', flag: 'pg-write-connections', defaultValue: 'auto', parse: autoOrInteger(1, 16) },
  replicaId: { env: 'REPLICA_ID', flag: 'replica-id', defaultValue: '', parse: optionalText },
  logLevel: {
    env: 'LOG_LEVEL', flag: 'log-level', defaultValue: 'info',
    parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'),
  },
  ringBytes: { env: 'RING_BYTES', flag: 'ring-bytes', defaultValue: String(64 * 1024 * 1024), parse: powerOfTwo },
  batchMax: { env: 'BATCH_MAX', flag: 'batch-max', defaultValue: '1000', parse: integer(1, 100_000) },
  batchLingerMs: { env: 'BATCH_LINGER_MS', flag: 'batch-linger-ms', defaultValue: '0', parse: integer(0, 1000) },
  bodyLimit: { env: 'BODY_LIMIT', flag: 'body-limit', defaultValue: String(8 * 1024 * 1024), parse: integer(1024, 2 ** 30) },
  maxEventsPerRequest: {
    env: 'MAX_EVENTS_PER_REQUEST', flag: 'max-events-per-request', defaultValue: '10000', parse: integer(1, 1_000_000),
  },
  maxPayloadBytes: {
    env: 'MAX_PAYLOAD_BYTES', flag: 'max-payload-bytes', defaultValue: String(64 * 1024), parse: integer(2, 2 ** 26),
  },
  maxTopics: { env: 'MAX_TOPICS', flag: 'max-topics', defaultValue: '100000', parse: integer(1, 100_000_000) },
  maxConsumers: { env: 'MAX_CONSUMERS', flag: 'max-consumers', defaultValue: '1000', parse: integer(1, 100_000) },
  ackTimeoutMs: { env: 'ACK_TIMEOUT_MS', flag: 'ack-timeout-ms', defaultValue: '30000', parse: integer(100, 600_000) },
  synchronous: { env: 'DB_SYNCHRONOUS', flag: 'db-synchronous', defaultValue: 'normal', parse: oneOf('normal', 'full') },
  dbMaxBytes: { env: 'DB_MAX_BYTES', flag: 'db-max-bytes', defaultValue: '0', parse: integer(0, Number.MAX_SAFE_INTEGER) },
  maxPageBytes: {
    env: 'MAX_PAGE_BYTES', flag: 'max-page-bytes', defaultValue: String(4 * 1024 * 1024), parse: integer(1024, 2 ** 28),
  },
  requestTimeoutMs: {
    env: 'REQUEST_TIMEOUT_MS', flag: 'request-timeout-ms', defaultValue: '30000', parse: integer(100, 600_000),
  },
  keepAliveTimeoutMs: {
    env: 'KEEP_ALIVE_TIMEOUT_MS', flag: 'keep-alive-timeout-ms', defaultValue: '5000', parse: integer(100, 600_000),
  },
  maxSubscribers: {
    env: 'MAX_SUBSCRIBERS', flag: 'max-subscribers', defaultValue: '10000', parse: integer(0, 1_000_000),
  },
  streamReadAheadBytes: {
    env: 'STREAM_READ_AHEAD_BYTES', flag: 'stream-read-ahead-bytes', defaultValue: String(32 * 1024 * 1024), parse: integer(0, 2 ** 32),
  },
  sseKeepAliveMs: { env: 'SSE_KEEPALIVE_MS', flag: 'sse-keepalive-ms', defaultValue: '15000', parse: integer(100, 600_000) },
  authToken: { env: 'AUTH_TOKEN', flag: 'auth-token', defaultValue: '', parse: optionalText },
  authReadToken: { env: 'AUTH_READ_TOKEN', flag: 'auth-read-token', defaultValue: '', parse: optionalText },
  authReads: { env: 'AUTH_READS', flag: 'auth-reads', defaultValue: 'false', parse: boolean },
  authTokensFile: { env: 'AUTH_TOKENS_FILE', flag: 'auth-tokens-file', defaultValue: '', parse: optionalText },
  retention: { env: 'RETENTION', flag: 'retention', defaultValue: '', parse: retentionSetting(parseRetentionRules) },
  dedupWindowMs: { env: 'DEDUP_WINDOW', flag: 'dedup-window', defaultValue: 'forever', parse: retentionSetting(parseDedupWindow) },
  dedupHotKeys: { env: 'DEDUP_HOT_KEYS', flag: 'dedup-hot-keys', defaultValue: '1000000', parse: integer(16, 2 ** 24) },
  otlpTopicAttribute: { env: 'OTLP_TOPIC_ATTRIBUTE', flag: 'otlp-topic-attribute', defaultValue: 'service.name', parse: text },
  otlpDefaultTopic: { env: 'OTLP_DEFAULT_TOPIC', flag: 'otlp-default-topic', defaultValue: 'otlp', parse: topic },
  fault: { env: 'AGGREGATOR_FAULT', flag: 'fault', defaultValue: '', parse: optionalText },
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Reads the configuration: a CLI flag wins over its environment variable, which wins over the default. */
export function loadConfig(argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): Config {
  const entries = Object.entries(SETTINGS) as [keyof Config, Setting][];
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({
      args: argv,
      options: Object.fromEntries(entries.map(([, s]) => [s.flag, { type: 'string' as const }])),
      strict: true,
    }).values;
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  const config: Record<string, unknown> = {};
  for (const [key, setting] of entries) {
    const flag = flags[setting.flag];
    const [raw, name] = typeof flag === 'string'
      ? [flag, `--${setting.flag}`]
      : [env[setting.env] ?? setting.defaultValue, setting.env];
    config[key] = setting.parse(raw, name);
  }
  const result = config as unknown as Config;
  if (result.store === 'postgres' && !/^postgres(ql)?:\/\//.test(result.databaseUrl)) {
    throw new ConfigError('STORE=postgres needs DATABASE_URL=postgres://user:pass@host:port/db');
  }
  if (result.authReads && !result.authToken && !result.authReadToken) {
    throw new ConfigError('AUTH_READS=true needs AUTH_TOKEN or AUTH_READ_TOKEN: without a token every read would stay open');
  }
  if (result.authReadToken && !result.authReads) {
    throw new ConfigError('AUTH_READ_TOKEN is used only with AUTH_READS=true; set both, or neither');
  }
  if (result.authTokensFile && (result.authToken || result.authReadToken || result.authReads)) {
    throw new ConfigError('AUTH_TOKENS_FILE replaces AUTH_TOKEN, AUTH_READ_TOKEN and AUTH_READS: set either the file or those');
  }
  result.replicaId ||= `${hostname()}:${result.port}`;
  return result;
}

/** The settings with their environment names and defaults, for --help and the docs. */
export function describeSettings(): string {
  return Object.values(SETTINGS)
    .map((s) => `  --${s.flag.padEnd(24)} ${s.env.padEnd(24)} default ${s.defaultValue}`)
    .join('\n');
}
