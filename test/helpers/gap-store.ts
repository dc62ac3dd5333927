import { join } from 'node:path';
import type { Test } from 'tap';
import { freshDatabase } from '../../scripts/pg-cluster.js';
import { createLogger } from '../../src/logger.js';
import { parseRetentionRules } from '../../src/retention.js';
import { PurgeCheck } from '../../src/stream/purge-check.js';
import { PostgresEventReader } from '../../src/store/postgres/postgres-reader.js';
import { PostgresEventStore } from '../../src/store/postgres/postgres-store.js';
import { SqliteEventStore } from '../../src/store/sqlite/sqlite-store.js';
import { SqliteWorkerReader } from '../../src/store/sqlite/sqlite-worker-reader.js';
import type { BatchResult, EventReader, EventStore } from '../../src/store/store.js';
import { CommitSignal } from '../../src/stream/commit-signal.js';
import { SubscriberHub } from '../../src/stream/hub.js';
import type { StreamSink, StreamStart } from '../../src/stream/subscription.js';
import { SseParser, type SseMessage } from '../../src/clients/sse-parser.js';
import { eventually } from './eventually.js';

/*
 * A real store that purges only when a test says so, with its real reader, wrapped to run a hook before
 * each stream read (a purge between two reads) and before each purge horizon read (a purge between a page
 * and its check), and to count purge horizon reads; and the real stream hub
 * over it, with subscribers that take everything at once. What the stream tests of purges share, on
 * SQLite and on PostgreSQL.
 */

export interface GapStore {
  reader: EventReader;
  horizonReads: number;
  /** Runs before each stream read. */
  beforeStreamRead: () => Promise<void> | void;
  /** Runs before each purge horizon read (a stream's check after its page, on SQLite). */
  beforeHorizonRead: () => Promise<void> | void;
  /** Commits one event of each topic, in order, one commit each; `receivedAt` for all of them. Resolves to their seqs. */
  append(topics: string[], receivedAt?: string): Promise<number[]>;
  /** Runs the writer's upkeep to the end, as the consumer does between batches: retention purges now. */
  purge(): Promise<void>;
}

export interface GapStoreKind {
  open(t: Test, retention: string): Promise<GapStore>;
}

type Writer = Pick<EventStore, 'upkeep'> & { commitBatch(...args: Parameters<EventStore['commitBatch']>): BatchResult | Promise<BatchResult> };

function gapStore(store: Writer, real: EventReader): GapStore {
  let stored = 0;
  const db: GapStore = {
    horizonReads: 0,
    beforeStreamRead: () => {},
    beforeHorizonRead: () => {},
    async append(topics, receivedAt = new Date().toISOString()) {
      const seqs: number[] = [];
      for (const topic of topics) {
        const event = { topic, eventId: `e${++stored}`, timestamp: '2026-11-24T10:00:00Z', source: 'test', payload: '{}', receivedAt };
        seqs.push((await store.commitBatch([event], { epoch: 'test', position: stored })).seqRange!.first);
      }
      return seqs;
    },
    async purge() {
      // A budget no step reaches even on a loaded machine: a round whose budget is spent on topics with
      // nothing due ends the round without saying pending (by design), which would leave later topics unpurged.
      for (let i = 0; i < 1_000 && (await store.upkeep(60_000)).pending; i++);
    },
    reader: {
      page: (query) => real.page(query),
      streamPage: async (query) => {
        await db.beforeStreamRead();
        return real.streamPage(query);
      },
      startAfter: (since) => real.startAfter(since),
      topics: (query) => real.topics(query),
      consumer: (name) => real.consumer(name),
      consumerStatus: (name) => real.consumerStatus(name),
      consumerPage: (name, limit, bounds) => real.consumerPage(name, limit, bounds),
      firstReceivedAfter: (until) => real.firstReceivedAfter(until),
      purgeHorizon: async (topics) => {
        await db.beforeHorizonRead();
        db.horizonReads++;
        return real.purgeHorizon(topics);
      },
      purgeHorizonsAbove: (topics, after) => real.purgeHorizonsAbove(topics, after),
      topicDetails: (topics) => real.topicDetails(topics),
      diskBytes: () => real.diskBytes(),
      close: () => real.close(),
    },
  };
  return db;
}

const policy = (retention: string) => ({ rules: parseRetentionRules(retention), dedupWindowMs: undefined });

export const sqliteGapStore: GapStoreKind = {
  async open(t, retention) {
    const dbPath = join(t.testdir(), 'gap.db');
    const store = new SqliteEventStore(dbPath, { synchronous: 'normal', maxBytes: 0, hotKeys: 16, retention: policy(retention) });
    t.teardown(() => store.close());
    const real = await SqliteWorkerReader.open({ dbPath, maxPageBytes: 1 << 20 }, createLogger('silent', 'test'));
    t.teardown(() => real.close());
    return gapStore(store, real);
  },
};

export const postgresGapStore: GapStoreKind = {
  async open(t, retention) {
    const url = await freshDatabase();
    const store = await PostgresEventStore.open(url, 'test', policy(retention));
    t.teardown(() => store.close());
    const real = new PostgresEventReader(url, 'test', 1 << 20);
    t.teardown(() => real.close());
    return gapStore(store, real);
  },
};

/** A subscriber's socket that takes everything at once, parsed as a client would. */
function sink(): StreamSink & { messages: SseMessage[]; ended: boolean } {
  const parser = new SseParser();
  const messages: SseMessage[] = [];
  const client: StreamSink & { messages: SseMessage[]; ended: boolean } = {
    messages,
    ended: false,
    write: (bytes) => void messages.push(...parser.feed(Buffer.from(bytes).toString())),
    bufferedBytes: 0,
    needsDrain: false,
    drained: async () => true,
    end: () => {
      client.ended = true;
    },
    destroy: () => {},
  };
  return client;
}

const LIMITS = {
  pageLimit: 1_000, pageBytes: 1 << 20, livePageBytes: 1 << 20, maxLiveBuffered: 1 << 20, stallTimeoutMs: 10_000, keepAliveMs: 60_000,
  readAheadBytes: 16 << 20,
};

/** The real hub over `reader`; `open` starts a subscriber at `start` (as the route would) and returns what it receives. */
export function hubOver(t: Test, reader: EventReader, options: { purging?: boolean; pageLimit?: number } = {}) {
  // Raised after each commit, as the pipeline's commit event does in the server.
  const commits = new CommitSignal();
  const hub = new SubscriberHub(reader, new PurgeCheck(reader, options.purging ?? true), commits,
    { ...LIMITS, pageLimit: options.pageLimit ?? LIMITS.pageLimit, maxSubscribers: 100 }, createLogger('silent', 'test'));
  t.teardown(() => hub.close());
  const open = (after: number, topics?: string[], resumed?: Pick<StreamStart, 'toldSum' | 'range'>) => {
    const client = sink();
    hub.subscribe(client, { after, topics, ...resumed }, () => {});
    return client;
  };
  return { commits, open };
}

/** What a client saw: `gap <after>-><resumed_after>`, `end <last_seq>` and the seqs of the events. */
export const seen = (messages: SseMessage[]) => messages.map((m) => {
  if (m.event === 'end') return `end ${(JSON.parse(m.data) as { last_seq: number }).last_seq}`;
  if (m.event !== 'gap') return Number(m.id);
  const { after, resumed_after: resumed } = JSON.parse(m.data) as { after: number; resumed_after: number };
  return `gap ${after}->${resumed}`;
});

export const until = (client: { messages: SseMessage[] }, count: number) =>
  eventually(() => client.messages.length, { what: `${count} messages`, timeout: 5_000, interval: 5, until: (n) => n >= count });

/** Time for anything more to arrive where nothing should: the hub's reads here take a few milliseconds. */
export const settle = () => new Promise((resolve) => setTimeout(resolve, 50));
