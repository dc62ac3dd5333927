import { TypeCompiler } from '@sinclair/typebox/compiler';
import t from 'tap';
import { StatsSchema } from '../src/http/schemas/stats.js';
import { parseRetentionRules } from '../src/retention.js';
import { makeEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { startAggregator, type TestAggregator } from './helpers/in-process.js';
import { openStream } from './helpers/sse.js';

/*
 * What readers and operators see of retention on SQLite, through the server's own purge: /stats figures,
 * the /events X-Purged-Through header, the stream's gap event, the purge metrics. The store's purge itself
 * (what is deleted when, dedup of purged keys) has its own tests.
 */

const detailOf = (stats: any, topic: string) => (stats.topic_details as { topic: string }[]).find((d) => d.topic === topic) as any;

/**
 * Waits until the store has purged `topic` down to `events` retained events, and the consumer has reported
 * it (its upkeep message comes after the purge's commit).
 */
const purgedDownTo = (agg: TestAggregator, topic: string, events: number) => eventually(() => agg.get('/stats'), {
  what: `${topic} purged down to ${events} events`, timeout: 20_000, interval: 50,
  until: (stats) => detailOf(stats, topic)?.events === events && detailOf(stats, topic).purged_through > 0
    && stats.topic_events[topic] === events && stats.store.last_purge !== null,
});

t.test('/stats: each listed topic\'s retained events, bytes, seq range and oldest received_at; the store\'s figures; its schema', async (t) => {
  const agg = await startAggregator(t);
  const before = Date.now();
  // Same-sized events: a topic's bytes are proportional to its events.
  const sent = [...Array.from({ length: 3 }, () => makeEvent({ topic: 'a' })), makeEvent({ topic: 'b' }), makeEvent({ topic: 'b' })];
  t.equal((await agg.publish(sent)).status, 200);
  const published = Date.now();
  // The store's figures are read in the background: /stats never waits for the store.
  const stats = await eventually(() => agg.get('/stats'), {
    what: 'figures read after the publish', timeout: 10_000, interval: 50,
    until: (s) => s.store.as_of !== null && Date.parse(s.store.as_of) >= published && s.topic_details.length === 2,
  });
  t.same([...TypeCompiler.Compile(StatsSchema).Errors(stats)].map((e) => `${e.path}: ${e.message}`), [], 'the documented schema, exactly');
  t.same(stats.topics, ['a', 'b']);
  const [a, b] = stats.topic_details;
  t.match(a, { topic: 'a', events: 3, first_seq: 1, last_seq: 3, purged_through: 0 });
  t.match(b, { topic: 'b', events: 2, first_seq: 4, last_seq: 5, purged_through: 0 });
  t.ok(a.bytes > 0 && a.bytes * 2 === b.bytes * 3, `bytes of the retained events (${a.bytes}, ${b.bytes})`);
  t.ok(Date.parse(a.oldest_received_at) >= before - 1_000 && Date.parse(a.oldest_received_at) <= Date.now(), 'oldest received_at');
  t.ok(stats.store.disk_bytes > 0, `disk_bytes ${stats.store.disk_bytes}`);
  t.equal(stats.store.last_purge, null, 'nothing purged');
  t.equal(stats.unique_processed, 5);
  const store = await eventually(async () => (await agg.get('/stats')).store, {
    what: 'an upkeep report after the publish', timeout: 10_000, interval: 50, until: (s) => s.dedup_keys === 5,
  });
  t.match(store, { dedup_keys: 5, segments: 0 }, 'the dedup index holds every key');
  t.ok(store.index_memory_bytes > 0 && store.hot_keys === 5, 'its memory and hot keys');
});

t.test('RETENTION by count: /events tells of the purge in X-Purged-Through, /stats and /metrics show it, the stream gets a gap', async (t) => {
  const agg = await startAggregator(t, { retention: parseRetentionRules('t.*=5') });
  // t.a: seqs 1-20, of which 1-15 go; u is kept whole.
  t.equal((await agg.publish(Array.from({ length: 20 }, (_, i) => makeEvent({ topic: 't.a', event_id: `a-${i}` })))).status, 200);
  t.equal((await agg.publish(Array.from({ length: 3 }, () => makeEvent({ topic: 'u' })))).status, 200);
  await purgedDownTo(agg, 't.a', 5);

  const events = async (query: string) => {
    const res = await agg.request('GET', `/events?${query}`);
    t.equal(res.status, 200);
    return { header: res.headers['x-purged-through'], ids: (res.body as { event_id: string; seq: number }[]).map((e) => e.event_id) };
  };
  const retained = ['a-15', 'a-16', 'a-17', 'a-18', 'a-19'];
  t.same(await events('topic=t.a&after=0'), { header: '15', ids: retained }, 'from the oldest retained, told so');
  t.same(await events('topic=t.a&after=14'), { header: '15', ids: retained }, 'a cursor one below the horizon');
  t.same(await events('topic=t.a&after=15'), { header: undefined, ids: retained }, 'at the horizon: nothing missed, no header');
  t.equal((await events('after=0')).header, '15', 'every topic');
  t.equal((await events('topic=u&after=0')).header, undefined, 'a topic nothing was purged of');

  t.equal((await agg.request('PUT', '/consumers/behind', { topics: ['t.a'], start: 'earliest' })).status, 201);
  t.equal((await agg.request('PUT', '/consumers/others', { topics: ['u'], start: 'earliest' })).status, 201);
  const consumerPage = async (name: string) => {
    const res = await agg.request('GET', `/consumers/${name}/events?wait_ms=0`);
    t.equal(res.status, 200);
    return { header: res.headers['x-purged-through'], ids: (res.body.events as { event_id: string }[]).map((e) => e.event_id) };
  };
  t.same(await consumerPage('behind'), { header: '15', ids: retained }, 'a durable consumer behind the purge is told too');
  t.equal((await consumerPage('others')).header, undefined, 'one whose topics lost nothing is not');

  const stats = await agg.get('/stats');
  t.match(detailOf(stats, 't.a'), { events: 5, first_seq: 16, last_seq: 20, purged_through: 15 });
  t.equal(stats.topic_events['t.a'], 5, 'topic_events: retained events');
  t.equal(stats.unique_processed, 23, 'unique_processed still counts every event ever stored');
  t.equal(stats.received, stats.unique_processed + stats.duplicate_dropped);
  t.match(stats.store.last_purge, { events: Number, total: 15 });
  t.equal((await agg.publish(makeEvent({ topic: 't.a', event_id: 'a-0' }))).body.duplicates, 1, 'a purged event\'s key is still a duplicate');

  const metrics = (await agg.app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /^aggregator_purged_events_total\{[^}]*\} 15$/m);
  t.match(metrics, /^aggregator_last_purge_timestamp_seconds\{[^}]*\} [1-9]/m);

  const url = await agg.app.listen({ port: 0, host: '127.0.0.1' });
  const fromStart = await openStream(url, '/events/stream?topic=t.a&after=0');
  const resumed = await openStream(url, '/events/stream?topic=t.a', { 'last-event-id': '3' });
  const ahead = await openStream(url, '/events/stream?topic=t.a&after=17');
  for (const stream of [fromStart, resumed]) await stream.waitFor(6);
  await ahead.waitFor(3);
  for (const stream of [fromStart, resumed, ahead]) stream.close();
  const shown = (stream: typeof fromStart) => stream.events.map((e) => (e.event === 'gap' ? JSON.parse(e.data) : Number(e.id)));
  t.same(shown(fromStart), [{ after: 0, resumed_after: 15 }, 16, 17, 18, 19, 20], 'after=0: the gap, then the oldest retained event');
  t.same(shown(resumed), [{ after: 3, resumed_after: 15 }, 16, 17, 18, 19, 20], 'Last-Event-ID behind the purge');
  t.same(shown(ahead), [18, 19, 20], 'a cursor past the purge: no gap');
});

t.test('RETENTION by age: once every event of a topic is older than its limit, readers are told and the stream goes on live', async (t) => {
  const agg = await startAggregator(t, { retention: parseRetentionRules('t.*=2s') });
  t.equal((await agg.publish(Array.from({ length: 4 }, () => makeEvent({ topic: 't.old' })))).status, 200);
  await purgedDownTo(agg, 't.old', 0);
  const res = await agg.request('GET', '/events?topic=t.old&after=0');
  t.same(res.body, [], 'nothing retained');
  t.equal(res.headers['x-purged-through'], '4');
  t.match(detailOf(await agg.get('/stats'), 't.old'),
    { events: 0, bytes: 0, first_seq: 0, last_seq: 0, oldest_received_at: null, purged_through: 4 });

  const url = await agg.app.listen({ port: 0, host: '127.0.0.1' });
  const stream = await openStream(url, '/events/stream?topic=t.old&after=1');
  const fromNow = await openStream(url, '/events/stream?topic=t.old');
  t.equal((await agg.publish(makeEvent({ topic: 't.old' }))).status, 200);
  await stream.waitFor(2);
  await fromNow.waitFor(1);
  stream.close();
  fromNow.close();
  t.same(stream.events.map((e) => e.event === 'gap' ? JSON.parse(e.data) : Number(e.id)), [{ after: 1, resumed_after: 4 }, 5]);
  t.same(fromNow.ids, [5], 'a stream from now starts past the purged events, without a gap');
});
