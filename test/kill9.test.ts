import { join } from 'node:path';
import t from 'tap';
import type { PublishedEvent } from '../src/event.js';
import { SyntheticEvents } from '../src/clients/synthetic-events.js';
import { keyOf, makeEvent, prng } from './helpers/events.js';
import { readAllEvents, spawnServer, type ServerProcess } from './helpers/server-process.js';

const CYCLES = 10;
const PUBLISHERS = 4;

/**
 * Publishes until the server dies: single events and batches from `source` (with its re-sends of earlier
 * events). Returns every event whose publish was answered 200 (so it must be durable).
 */
async function publishUntilDead(server: ServerProcess, source: SyntheticEvents, random: () => number): Promise<PublishedEvent[]> {
  const acked: PublishedEvent[] = [];
  for (;;) {
    const batch = source.batch(random() < 0.5 ? 1 : 1 + Math.floor(random() * 50));
    try {
      const res = await server.publish(batch.length === 1 ? batch[0]! : batch);
      if (res.status === 200) acked.push(...batch);
    } catch {
      return acked; // connection refused or reset: the server is gone
    }
  }
}

t.test('kill -9 while publishers run loses no acknowledged event and counts nothing twice', async (t) => {
  const dbPath = join(t.testdir(), 'aggregator.db');
  const random = prng(9);
  const source = new SyntheticEvents({ duplicateRatio: 0.2, topics: 4, idKind: 'v4', random });
  const allAcked = new Map<string, PublishedEvent>();

  // Each cycle's restarted server, once checked, is the next cycle's victim: one start per kill.
  let server = await spawnServer(dbPath);
  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    const publishers = Array.from({ length: PUBLISHERS }, () => publishUntilDead(server, source, random));
    // Not a wait for anything: when the kill lands is what varies from cycle to cycle.
    await new Promise((resolve) => setTimeout(resolve, 200 + random() * 500));
    await server.kill();
    const cycleAcked = await Promise.all(publishers);
    for (const acked of cycleAcked) for (const e of acked) allAcked.set(keyOf(e), e);

    const restarted = await spawnServer(dbPath);
    const stored = await readAllEvents(restarted.get);
    const stats = await restarted.get('/stats');
    const storedKeys = new Map<string, number>();
    for (const e of stored) storedKeys.set(keyOf(e), (storedKeys.get(keyOf(e)) ?? 0) + 1);
    const missing = [...allAcked.keys()].filter((k) => !storedKeys.has(k));
    t.equal(missing.length, 0, `cycle ${cycle}: all ${allAcked.size} acknowledged events are stored`);
    t.ok([...storedKeys.values()].every((n) => n === 1), `cycle ${cycle}: each stored exactly once`);
    t.equal(stats.unique_processed, stored.length, `cycle ${cycle}: unique_processed equals the store`);
    t.equal(stats.received, stats.unique_processed + stats.duplicate_dropped, `cycle ${cycle}: counters add up`);

    let unique = 0;
    for (const acked of cycleAcked) {
      for (let i = 0; i < acked.length; i += 1000) unique += (await restarted.publish(acked.slice(i, i + 1000))).body.unique;
    }
    t.equal(unique, 0, `cycle ${cycle}: republishing this cycle's acknowledged events yields only duplicates`);
    server = restarted;
  }
  t.equal(await server.stop(), 0, 'the last restarted server stops cleanly');
  t.ok(allAcked.size > 100, `enough traffic was acknowledged to mean something (${allAcked.size})`);
});

t.test('kill -9 while the dedup index seals and merges and retention purges loses no key and stores none twice', async (t) => {
  const dbPath = join(t.testdir(), 'aggregator.db');
  const random = prng(12);
  const source = new SyntheticEvents({ duplicateRatio: 0.2, topics: 4, idKind: 'v4', random });
  // A seal every 64 keys and a purge after every few batches: a kill at a random moment lands inside them.
  const purged = 'events.topic-0';
  const env = { DEDUP_HOT_KEYS: '64', RETENTION: `${purged}=20` };
  const allAcked = new Map<string, PublishedEvent>();
  let server = await spawnServer(dbPath, env);
  for (let cycle = 1; cycle <= 4; cycle++) {
    const publishers = Array.from({ length: PUBLISHERS }, () => publishUntilDead(server, source, random));
    await new Promise((resolve) => setTimeout(resolve, 300 + random() * 500));
    await server.kill();
    for (const acked of await Promise.all(publishers)) for (const e of acked) allAcked.set(keyOf(e), e);

    const restarted = await spawnServer(dbPath, env);
    const stored = await readAllEvents(restarted.get);
    const storedKeys = new Map<string, number>();
    for (const e of stored) storedKeys.set(keyOf(e), (storedKeys.get(keyOf(e)) ?? 0) + 1);
    t.ok([...storedKeys.values()].every((n) => n === 1), `cycle ${cycle}: each stored exactly once`);
    const missing = [...allAcked.values()].filter((e) => !storedKeys.has(keyOf(e)));
    t.ok(missing.every((e) => e.topic === purged), `cycle ${cycle}: only the purged topic misses acknowledged events (${missing.length})`);
    const stats = await restarted.get('/stats');
    t.equal(stats.received, stats.unique_processed + stats.duplicate_dropped, `cycle ${cycle}: counters add up`);
    let unique = 0;
    const acked = [...allAcked.values()];
    for (let i = 0; i < acked.length; i += 1000) unique += (await restarted.publish(acked.slice(i, i + 1000))).body.unique;
    t.equal(unique, 0, `cycle ${cycle}: every acknowledged key, purged or not, is still a duplicate`);
    server = restarted;
  }
  t.equal(await server.stop(), 0, 'the last restarted server stops cleanly');
  const sealed = await spawnServer(dbPath, env);
  const loaded = sealed.logs.find((line) => line.msg === 'dedup index loaded')!;
  t.equal(loaded.hotRowsRead, 0, 'after the clean stop the index loaded from its segments alone');
  t.ok(Number(loaded.segments) >= 1, 'in sealed segments');
  t.equal(await sealed.stop(), 0);
  t.ok(allAcked.size > 100, `enough traffic was acknowledged to mean something (${allAcked.size})`);
});

t.test('kill -9 with ?ack=queued loses at most the tail that was not yet committed', async (t) => {
  const dbPath = join(t.testdir(), 'aggregator.db');
  const server = await spawnServer(dbPath);
  const queued: string[][] = [[], [], []];
  const sent = new Set<string>();
  const publishers = queued.map(async (ids, p) => {
    for (let n = 0; ; n++) {
      const batch = Array.from({ length: 1 + (n % 20) }, (_, i) => makeEvent({ topic: `publisher-${p}`, event_id: `${n}-${i}` }));
      for (const e of batch) sent.add(keyOf(e));
      try {
        const res = await server.publish(batch, '?ack=queued');
        if (res.status === 202) ids.push(...batch.map((e) => e.event_id));
      } catch {
        return;
      }
    }
  });
  // Publishing for a while gives the kill a tail of queued, uncommitted events to cut.
  await new Promise((resolve) => setTimeout(resolve, 800));
  await server.kill();
  await Promise.all(publishers);

  const restarted = await spawnServer(dbPath);
  t.teardown(() => restarted.kill());
  const stored = await readAllEvents(restarted.get);
  let lost = 0;
  queued.forEach((ids, p) => {
    const kept = new Set(stored.filter((e) => e.topic === `publisher-${p}`).map((e) => e.event_id));
    const firstMissing = ids.findIndex((id) => !kept.has(id));
    const tail = firstMissing === -1 ? [] : ids.slice(firstMissing);
    t.ok(tail.every((id) => !kept.has(id)), `publisher ${p}: what was lost is one tail, with no gap before it`);
    lost += tail.length;
  });
  t.ok(stored.every((e) => sent.has(keyOf(e))), 'nothing stored that was not sent');
  const total = queued.reduce((sum, ids) => sum + ids.length, 0);
  t.comment(`${total} events answered 202; ${lost} of them lost with the process`);
  t.ok(total > 100, 'enough traffic to mean something');
  t.equal((await restarted.get('/stats')).unique_processed, stored.length, 'counters equal the store');
});
