import Fastify from 'fastify';
import t, { type Test } from 'tap';
import { IDENTITY_FORMAT_CHECKS } from '../src/event-rules.js';
import { consumerRoutes } from '../src/http/routes/consumers.js';
import { eventsRoutes, PURGED_THROUGH_HEADER } from '../src/http/routes/events.js';
import { createLogger } from '../src/logger.js';
import { PurgeCheck } from '../src/store/purge-check.js';
import { sseFrames } from '../src/store/sse-frames.js';
import type { ConsumerRecord } from '../src/store/consumers.js';
import type { EventReader, PurgeHorizon, StreamPage, StreamPageQuery } from '../src/store/store.js';
import { CommitSignal } from '../src/subscribe/commit-signal.js';
import { SubscriberHub } from '../src/subscribe/hub.js';
import type { StreamSink } from '../src/subscribe/subscription.js';
import { SseParser, type SseMessage } from '../src/subscriber/sse-parser.js';
import { eventually } from './helpers/eventually.js';

/*
 * What readers are told of purged events, on a store held in memory whose purges the test makes at chosen
 * moments (between two reads of a stream, before the shared feed reads): the stream's `gap` event and the
 * /events header. The same through the real retention of a server: retention-sqlite.test.ts.
 */

/** Events by seq, each of a topic; a purge deletes a topic's events up to a seq, as retention does. */
class MemoryStore {
  events: { seq: number; topic: string }[] = [];
  purgedThrough = new Map<string, number>();
  horizonReads = 0;
  consumers = new Map<string, ConsumerRecord>();
  /** Runs before each stream read: lets a test purge between a subscriber's reads. */
  beforeStreamRead: () => void = () => {};

  append(...topics: string[]): void {
    const last = this.end();
    topics.forEach((topic, i) => this.events.push({ seq: last + i + 1, topic }));
  }

  purge(topic: string, through: number): void {
    this.events = this.events.filter((e) => e.topic !== topic || e.seq > through);
    this.purgedThrough.set(topic, Math.max(through, this.purgedThrough.get(topic) ?? 0));
  }

  end(): number {
    return Math.max(this.events.at(-1)?.seq ?? 0, ...this.purgedThrough.values());
  }

  /** Only what the stream and /events use: every other read is a mistake of the test. */
  reader(): EventReader {
    const unused = () => Promise.reject(new Error('not used by these tests'));
    return {
      streamPage: async (query) => {
        this.beforeStreamRead();
        return this.streamPage(query);
      },
      purgeHorizon: async (topics) => {
        this.horizonReads++;
        return this.horizon(topics);
      },
      page: async () => Buffer.from('[]'),
      startAfter: async () => this.end(),
      consumer: async (name) => this.consumers.get(name),
      consumerPage: async (name) => {
        const consumer = this.consumers.get(name);
        return consumer && { events: Buffer.from('[]'), count: 0, next: consumer.position };
      },
      topics: unused, consumerStatus: unused, topicDetails: unused, diskBytes: unused,
      close: async () => {},
    };
  }

  private streamPage({ topics, after, limit, maxBytes }: StreamPageQuery): StreamPage {
    const end = Math.max(after, this.end());
    const rows = this.events.filter((e) => e.seq > after && (topics === undefined || topics.includes(e.topic))).slice(0, limit);
    return sseFrames(rows.map(({ seq, topic }) => ({ seq, topic, parts: [Buffer.from(JSON.stringify({ seq, topic }))] })), maxBytes, end);
  }

  private horizon(topics: readonly string[] | undefined): PurgeHorizon {
    const known = [...new Set(this.events.map((e) => e.topic)), ...this.purgedThrough.keys()];
    const through = [...new Set(known)].filter((topic) => topics === undefined || topics.includes(topic))
      .map((topic) => this.purgedThrough.get(topic) ?? 0);
    return through.length === 0 ? { max: 0, min: 0 } : { max: Math.max(...through), min: Math.min(...through) };
  }
}

/** A subscriber's socket that takes everything at once, parsed as a client would. */
function sink(): StreamSink & { messages: SseMessage[] } {
  const parser = new SseParser();
  const messages: SseMessage[] = [];
  return {
    messages,
    write: (bytes) => void messages.push(...parser.feed(Buffer.from(bytes).toString())),
    bufferedBytes: 0,
    needsDrain: false,
    drained: async () => true,
    end: () => {},
    destroy: () => {},
  };
}

const LIMITS = {
  pageLimit: 1_000, pageBytes: 1 << 20, livePageBytes: 1 << 20, maxLiveBuffered: 1 << 20, stallTimeoutMs: 10_000, keepAliveMs: 60_000,
};

function hubOver(t: Test, store: MemoryStore, options: { purging?: boolean; pageLimit?: number } = {}) {
  const commits = new CommitSignal();
  const reader = store.reader();
  const hub = new SubscriberHub(reader, new PurgeCheck(reader, options.purging ?? true), commits,
    { ...LIMITS, pageLimit: options.pageLimit ?? LIMITS.pageLimit, maxSubscribers: 100 }, createLogger('silent', 'test'));
  t.teardown(() => hub.close());
  const open = (after: number, topics?: string[]) => {
    const client = sink();
    hub.subscribe(client, { after, topics }, () => {});
    return client;
  };
  return { commits, open };
}

/** What a client saw: `gap <after>-><resumed_after>` and the seqs of the events. */
const seen = (messages: SseMessage[]) => messages.map((m) => {
  if (m.event !== 'gap') return Number(m.id);
  const { after, resumed_after: resumed } = JSON.parse(m.data) as { after: number; resumed_after: number };
  return `gap ${after}->${resumed}`;
});
const until = (client: { messages: SseMessage[] }, count: number) =>
  eventually(() => client.messages.length, { what: `${count} messages`, timeout: 5_000, interval: 5, until: (n) => n >= count });
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

t.test('a cursor behind a purge gets a gap first, then the first retained event; no gap where nothing after it was purged', async (t) => {
  const store = new MemoryStore();
  store.append(...Array<string>(10).fill('a'));
  store.purge('a', 4);
  const { open } = hubOver(t, store);
  const fromStart = open(0);
  const lastEventId = open(2, ['a']);
  const atHorizon = open(4);
  const ahead = open(6);
  await until(fromStart, 7);
  await until(lastEventId, 7);
  await until(atHorizon, 6);
  await settle();
  t.same(seen(fromStart.messages), ['gap 0->4', ...range(5, 10)], 'after=0: the gap, then the oldest retained event on');
  t.same(seen(lastEventId.messages), ['gap 2->4', ...range(5, 10)], 'a resumed cursor behind the purge too');
  t.same(seen(atHorizon.messages), range(5, 10), 'a cursor at the last purged seq missed nothing: no gap');
  t.same(seen(ahead.messages), range(7, 10), 'ahead of the purge: no gap');
  t.equal(fromStart.messages[0]!.id, '4', 'the gap carries the resumed cursor as its id, so a reconnect resumes past it');
});

t.test('over several topics the stream resumes at the lowest horizon: no retained event of any is skipped', async (t) => {
  const store = new MemoryStore();
  store.append('a', 'b', 'a', 'b', 'a', 'b', 'c', 'a', 'b', 'c');
  store.purge('a', 5);
  store.purge('b', 4);
  const { open } = hubOver(t, store);
  const all = open(0);
  const ab = open(0, ['a', 'b']);
  const c = open(0, ['c']);
  await until(all, 6);
  await until(ab, 4);
  await until(c, 2);
  await settle();
  t.same(seen(all.messages), ['gap 0->0', 6, 7, 8, 9, 10], 'c purged nothing: the cursor stays, every retained event follows');
  t.same(seen(ab.messages), ['gap 0->4', 6, 8, 9], 'a and b: resumed after b\'s horizon, the lower one');
  t.same(seen(c.messages), [7, 10], 'c lost nothing: no gap');
});

t.test('a purge is told once, however many pages the catch-up after it takes', async (t) => {
  const store = new MemoryStore();
  store.append('a', 'c', 'c', 'c', 'c', 'c', 'c', 'a', 'a', 'c');
  store.purge('a', 9);
  const { open } = hubOver(t, store, { pageLimit: 2 });
  const client = open(0);
  await until(client, 8);
  await settle();
  t.same(seen(client.messages), ['gap 0->0', 2, 3, 4, 5, 6, 7, 10], 'one gap; c\'s events below a\'s horizon still come');
});

t.test('a slow subscriber overtaken by a purge while it catches up gets a gap, then goes on without repeats', async (t) => {
  const store = new MemoryStore();
  store.append(...Array<string>(20).fill('a'));
  const { open } = hubOver(t, store, { pageLimit: 3 });
  let reads = 0;
  // The purge lands between the subscriber's first page (seqs 1-3) and its second.
  store.beforeStreamRead = () => {
    if (++reads === 2) store.purge('a', 12);
  };
  const client = open(0);
  await until(client, 12);
  await settle();
  t.same(seen(client.messages), [1, 2, 3, 'gap 3->12', ...range(13, 20)]);
});

t.test('a live subscriber whose events a purge took before the shared feed read them gets a gap', async (t) => {
  const store = new MemoryStore();
  store.append('a', 'b', 'a', 'b');
  const { open, commits } = hubOver(t, store);
  const a = open(0, ['a']);
  const b = open(0, ['b']);
  await until(a, 2);
  await until(b, 2);
  await settle();
  // A burst of `a` committed, and purged down to its last 2 (retention by count) before the feed woke.
  store.append('a', 'a', 'a', 'a', 'b', 'a', 'a');
  store.purge('a', 9);
  commits.notify();
  await until(a, 5);
  await until(b, 3);
  await settle();
  t.same(seen(a.messages), [1, 3, 'gap 4->9', 10, 11], 'the purged part of the burst is told, the rest delivered');
  t.same(seen(b.messages), [2, 4, 9], 'a subscriber of a topic the purge did not touch: no gap, nothing lost or repeated');
  store.append('a', 'b');
  commits.notify();
  await until(a, 6);
  await until(b, 4);
  t.same(seen(a.messages).slice(5), [12], 'live again afterwards');
  t.same(seen(b.messages).slice(3), [13]);
});

t.test('where nothing is purged while the server runs, the store-wide horizon is read once; older purges are still told', async (t) => {
  const store = new MemoryStore();
  store.append(...Array<string>(6).fill('a'));
  store.purge('a', 2);
  const { open } = hubOver(t, store, { purging: false });
  const behind = open(0);
  await until(behind, 5);
  t.same(seen(behind.messages), ['gap 0->2', 3, 4, 5, 6]);
  const reads = store.horizonReads;
  const ahead = open(3);
  await until(ahead, 3);
  await settle();
  t.same(seen(ahead.messages), [4, 5, 6]);
  t.equal(store.horizonReads, reads, 'a cursor past the stored horizon costs no purge read');
});

t.test(`/events carries ${PURGED_THROUGH_HEADER} exactly when events of the query's topics after \`after\` were purged`, async (t) => {
  const store = new MemoryStore();
  store.append('a', 'b', 'a', 'b', 'a', 'b');
  store.purge('a', 3);
  const app = Fastify({ ajv: { customOptions: { formats: IDENTITY_FORMAT_CHECKS } } });
  const reader = store.reader();
  await app.register(eventsRoutes, { reader, purges: new PurgeCheck(reader, true), stallTimeoutMs: 10_000, maxPageBytes: 1 << 20 });
  t.teardown(() => app.close());
  const header = async (query: string) => {
    const res = await app.inject({ method: 'GET', url: `/events?${query}` });
    t.equal(res.statusCode, 200);
    return res.headers[PURGED_THROUGH_HEADER.toLowerCase()];
  };
  t.equal(await header('after=0'), '3', 'every topic, after=0');
  t.equal(await header('after=2'), '3', 'after below the horizon');
  t.equal(await header('after=3'), undefined, 'after at the horizon: nothing after it was purged');
  t.equal(await header('after=5'), undefined);
  t.equal(await header('topic=a&after=0'), '3', 'the purged topic');
  t.equal(await header('topic=b&after=0'), undefined, 'a topic nothing was purged of');
  t.equal(await header('topic=nope&after=0'), undefined, 'an unknown topic');
});

t.test(`a durable consumer's page carries ${PURGED_THROUGH_HEADER} when events of its topics after its position were purged`, async (t) => {
  const store = new MemoryStore();
  store.append('a', 'b', 'a', 'b', 'a', 'b');
  store.purge('a', 3);
  const consumer = (name: string, topics: string[] | null, position: number): ConsumerRecord =>
    ({ name, topics, start: 'earliest', position, createdAt: '2026-11-24T10:00:00.000Z', lastCommitAt: null });
  for (const record of [consumer('behind', ['a'], 1), consumer('all', null, 2), consumer('at', ['a'], 3), consumer('other', ['b'], 0)]) {
    store.consumers.set(record.name, record);
  }
  for (const purging of [true, false]) {
    const app = Fastify({ ajv: { customOptions: { formats: IDENTITY_FORMAT_CHECKS } } });
    const reader = store.reader();
    // The routes that write (create, commit, delete) are not called here.
    const unused = {} as never;
    await app.register(consumerRoutes, {
      pipeline: unused, lags: unused, reader, commits: new CommitSignal(), purges: new PurgeCheck(reader, purging),
      maxConsumers: 10, stallTimeoutMs: 10_000,
    });
    const header = async (name: string) => {
      const res = await app.inject({ method: 'GET', url: `/consumers/${name}/events` });
      t.equal(res.statusCode, 200);
      return res.headers[PURGED_THROUGH_HEADER.toLowerCase()];
    };
    t.equal(await header('behind'), '3', `behind the purge of its topic (purging: ${purging})`);
    t.equal(await header('all'), '3', 'every topic');
    t.equal(await header('at'), undefined, 'at the horizon');
    t.equal(await header('other'), undefined, 'its topic lost nothing');
    await app.close();
  }
});
