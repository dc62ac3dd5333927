import { join } from 'node:path';
import t, { type Test } from 'tap';
import { PURGED_THROUGH_HEADER } from '../src/http/schemas/events.js';
import { parseRetentionRules } from '../src/retention.js';
import { makeEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { hubOver, seen, settle, sqliteGapStore, until } from './helpers/gap-store.js';
import { startAggregator, type TestAggregator } from './helpers/in-process.js';
import { streamGapSuite } from './suites/stream-gaps.js';

/*
 * What readers are told of purged events on SQLite. The stream's `gap` event, over a real store file, the
 * reader worker and the hub, with purges the test runs on the writer (upkeep) at chosen moments: before
 * the streams start, between two reads of a stream, before the shared feed reads; count rules (or an age
 * rule on events received long ago) decide exactly which seqs go (SQLite's seqs count 1, 2, 3, … here;
 * the suite shared with PostgreSQL takes them from the commits). And the X-Purged-Through header of
 * /events and consumer pages, through the server and its own purge.
 */

/** Long ago: an age rule purges every event received then, whatever the count. */
const LONG_AGO = '2020-01-01T00:00:00.000Z';
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

streamGapSuite(sqliteGapStore);

t.test('a cursor behind a purge gets a gap first, then the first retained event; no gap where nothing after it was purged', async (t) => {
  // a keeps its newest 6 of 10: seqs 1-4 go.
  const db = await sqliteGapStore.open(t, 'a=6');
  await db.append(Array<string>(10).fill('a'));
  await db.purge();
  const { open } = hubOver(t, db.reader);
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

t.test('a purge between a page\'s read and its check: the gap is told, and no event of that purge follows it (the page is read again)', async (t) => {
  // a keeps its newest event; c is never purged. a1 c1 a2 c2 are read as one page; before its check, a3
  // comes and a1, a2 go.
  const db = await sqliteGapStore.open(t, 'a=1');
  await db.append(['a', 'c', 'a', 'c']);
  const { open } = hubOver(t, db.reader);
  let checks = 0;
  db.beforeHorizonRead = async () => {
    if (++checks !== 1) return;
    await db.append(['a']);
    await db.purge();
  };
  const client = open(0);
  await until(client, 4);
  await settle();
  t.same(seen(client.messages), ['gap 0->0', 2, 4, 5], 'the gap, then the retained events of a page read after it');
});

t.test('over several topics the stream resumes at the lowest horizon: no retained event of any is skipped', async (t) => {
  // a (1, 3, 5, 8) keeps 8: purged through 5; b (2, 4, 6, 9) keeps 6 and 9: through 4; c keeps everything.
  const db = await sqliteGapStore.open(t, 'a=1,b=2');
  await db.append(['a', 'b', 'a', 'b', 'a', 'b', 'c', 'a', 'b', 'c']);
  await db.purge();
  const { open } = hubOver(t, db.reader);
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
  // Every event of a (1, 8, 9) is past its age limit: purged through 9. A count rule always keeps one.
  const db = await sqliteGapStore.open(t, 'a=1d');
  await db.append(['a'], LONG_AGO);
  await db.append(['c', 'c', 'c', 'c', 'c', 'c']);
  await db.append(['a', 'a'], LONG_AGO);
  await db.append(['c']);
  await db.purge();
  const { open } = hubOver(t, db.reader, { pageLimit: 2 });
  const client = open(0);
  await until(client, 8);
  await settle();
  t.same(seen(client.messages), ['gap 0->0', 2, 3, 4, 5, 6, 7, 10], 'one gap; c\'s events below a\'s horizon still come');
});

t.test('a slow subscriber overtaken by a purge while it catches up gets a gap, then goes on without repeats', async (t) => {
  // a keeps its newest 8 of 20 once purged: seqs 1-12 go.
  const db = await sqliteGapStore.open(t, 'a=8');
  await db.append(Array<string>(20).fill('a'));
  const { open } = hubOver(t, db.reader, { pageLimit: 3 });
  let reads = 0;
  // The purge lands between the subscriber's first page (seqs 1-3) and its second.
  db.beforeStreamRead = async () => {
    if (++reads === 2) await db.purge();
  };
  const client = open(0);
  await until(client, 12);
  await settle();
  t.same(seen(client.messages), [1, 2, 3, 'gap 3->12', ...range(13, 20)]);
});

t.test('a live subscriber whose events a purge took before the shared feed read them gets a gap', async (t) => {
  const db = await sqliteGapStore.open(t, 'a=2');
  await db.append(['a', 'b', 'a', 'b']);
  const { open, commits } = hubOver(t, db.reader);
  const a = open(0, ['a']);
  const b = open(0, ['b']);
  await until(a, 2);
  await until(b, 2);
  await settle();
  // A burst of a committed, and purged down to its last 2 (10 and 11; through 8, 9 is b's) before the feed woke.
  await db.append(['a', 'a', 'a', 'a', 'b', 'a', 'a']);
  await db.purge();
  commits.notify();
  await until(a, 5);
  await until(b, 3);
  await settle();
  t.same(seen(a.messages), [1, 3, 'gap 4->8', 10, 11], 'the purged part of the burst is told, the rest delivered');
  t.same(seen(b.messages), [2, 4, 9], 'a subscriber of a topic the purge did not touch: no gap, nothing lost or repeated');
  await db.append(['a', 'b']);
  commits.notify();
  await until(a, 6);
  await until(b, 4);
  t.same(seen(a.messages).slice(5), [12], 'live again afterwards');
  t.same(seen(b.messages).slice(3), [13]);
});

t.test('where nothing is purged while the server runs, the store-wide horizon is read once; older purges are still told', async (t) => {
  // Purged before the hub starts (a keeps 4 of 6: through 2), and never again: as a server without RETENTION on that file.
  const db = await sqliteGapStore.open(t, 'a=4');
  await db.append(Array<string>(6).fill('a'));
  await db.purge();
  const { open } = hubOver(t, db.reader, { purging: false });
  const behind = open(0);
  await until(behind, 5);
  t.same(seen(behind.messages), ['gap 0->2', 3, 4, 5, 6]);
  const reads = db.horizonReads;
  const ahead = open(3);
  await until(ahead, 3);
  await settle();
  t.same(seen(ahead.messages), [4, 5, 6]);
  t.equal(db.horizonReads, reads, 'a cursor past the stored horizon costs no purge read');
});

/**
 * A server that stored a, b, a, b, a, b (seqs 1-6) and purged them itself under `a=1` (a's 1 and 3 go:
 * through 3), with consumers after 1 (of a), 2 (of every topic), 3 (of a) and 0 (of b).
 */
async function purgedServer(t: Test, dbPath: string): Promise<TestAggregator> {
  const agg = await startAggregator(t, { dbPath, retention: parseRetentionRules('a=1') });
  t.equal((await agg.publish(['a', 'b', 'a', 'b', 'a', 'b'].map((topic) => makeEvent({ topic })))).status, 200);
  for (const [name, topics, start] of [['behind', ['a'], 1], ['all', undefined, 2], ['at', ['a'], 3], ['other', ['b'], 0]] as const) {
    t.equal((await agg.request('PUT', `/consumers/${name}`, { topics, start })).status, 201, `consumer ${name} after ${start}`);
  }
  await eventually(() => agg.get('/stats'), {
    what: 'a purged through 3', timeout: 10_000, interval: 20,
    until: (stats) => (stats.topic_details as { topic: string; purged_through: number }[]).find((d) => d.topic === 'a')?.purged_through === 3,
  });
  return agg;
}

/** The /events and consumer page headers of that store, checked the same whether or not the server purges. */
async function checkHeaders(t: Test, agg: TestAggregator): Promise<void> {
  const header = async (path: string) => {
    const res = await agg.request('GET', path);
    t.equal(res.status, 200, path);
    return res.headers[PURGED_THROUGH_HEADER.toLowerCase()];
  };
  t.equal(await header('/events?after=0'), '3', 'every topic, after=0');
  t.equal(await header('/events?after=2'), '3', 'after below the horizon');
  t.equal(await header('/events?after=3'), undefined, 'after at the horizon: nothing after it was purged');
  t.equal(await header('/events?after=5'), undefined);
  t.equal(await header('/events?topic=a&after=0'), '3', 'the purged topic');
  t.equal(await header('/events?topic=b&after=0'), undefined, 'a topic nothing was purged of');
  t.equal(await header('/events?topic=nope&after=0'), undefined, 'an unknown topic');
  const consumer = (name: string) => header(`/consumers/${name}/events?wait_ms=0`);
  t.equal(await consumer('behind'), '3', 'a consumer behind the purge of its topic');
  t.equal(await consumer('all'), '3', 'a consumer of every topic');
  t.equal(await consumer('at'), undefined, 'a consumer at the horizon');
  t.equal(await consumer('other'), undefined, 'a consumer whose topic lost nothing');
  const inRange = '&since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z';
  t.equal(await header(`/events?after=0${inRange}`), '3', 'a time range with purged events inside it: told as well');
  t.equal(await header(`/consumers/behind/events?wait_ms=0${inRange}`), '3', 'a consumer page of a time range too');
}

t.test(`/events and consumer pages carry ${PURGED_THROUGH_HEADER} exactly when events of their topics after the cursor were purged`, async (t) => {
  const dbPath = join(t.testdir(), 'aggregator.db');
  await t.test('under RETENTION (the server purges)', async (t) => checkHeaders(t, await purgedServer(t, dbPath)));
  // Nothing can be purged now: the store-wide horizon is read once (PurgeCheck), the earlier purge still told.
  await t.test('restarted without RETENTION', async (t) => checkHeaders(t, await startAggregator(t, { dbPath })));
});
