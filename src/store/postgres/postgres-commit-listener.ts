import pg from 'pg';
import type { Logger } from '../../logger.js';
import { COMMIT_CHANNEL } from './postgres-schema.js';
import { sessionTimeouts } from './postgres-store.js';

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;
const CONNECT_TIMEOUT_MS = 3_000;

/** The topics a commit's NOTIFY names (a JSON array); undefined (any topic) for an empty payload: too many to name. */
function touchedTopics(payload: string | undefined): readonly string[] | undefined {
  if (!payload) return undefined;
  try {
    const topics: unknown = JSON.parse(payload);
    return Array.isArray(topics) && topics.every((topic) => typeof topic === 'string') ? topics : undefined;
  } catch {
    return undefined;
  }
}

/**
 * LISTENs for every replica's commits (the NOTIFY in the commit statement) and calls `onCommit` for each,
 * with the topics it touched. A lost connection reconnects by itself with backoff; since notifications
 * sent meanwhile are lost, `onCommit` is also called after each (re)connect, for any topic, so every
 * subscriber looks at the store once more.
 */
export class PostgresCommitListener {
  private client: pg.Client | undefined;
  private delay = RECONNECT_MIN_MS;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly url: string, private readonly replica: string,
    private readonly onCommit: (topics: readonly string[] | undefined) => void, private readonly log: Logger, private readonly timeoutMs: number) {
    void this.connect();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.url, application_name: `pubsub-aggregator listener ${this.replica}`,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS, ...sessionTimeouts(this.timeoutMs),
    });
    this.client = client;
    let lost = false;
    const reconnect = (error?: Error) => {
      if (lost) return;
      lost = true;
      if (this.closed) return;
      this.log.warn({ err: error, delay: this.delay }, 'the commit listener lost PostgreSQL; reconnecting');
      this.timer = setTimeout(() => void this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, RECONNECT_MAX_MS);
    };
    client.on('error', reconnect);
    client.on('end', () => reconnect());
    client.on('notification', (message) => this.onCommit(touchedTopics(message.payload)));
    try {
      await client.connect();
      await client.query(`LISTEN ${COMMIT_CHANNEL}`);
      this.delay = RECONNECT_MIN_MS;
      this.onCommit(undefined);
    } catch (error) {
      await client.end().catch(() => undefined);
      reconnect(error as Error);
    }
  }
}
