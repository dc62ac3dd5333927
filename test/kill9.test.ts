import { join } from 'node:path';
import t from 'tap';
import { keyOf, makeEvent, prng, type TestEvent } from './helpers/events.js';
import { readAllEvents, spawnServer, type ServerProcess } from './helpers/server-process.js';

const CYCLES = 3;
const PUBLISHERS = 4;

/**
 * Publishes until the server dies: single events and batches, about 20% re-sends of earlier events.
 * Returns every event whose publish was answered 200 (so it must be durable).
 */
async function publishUntilDead(server: ServerProcess, sent: TestEvent[], random: () => number): Promise<TestEvent[]> {
  const acked: TestEvent[] = [];
  for (;;) {
    const size = random() < 0.5 ? 1 : 1 + Math.floor(random() * 50);
    const batch = Array.from({ length: size }, () =>
      sent.length > 0 && random() < 0.2 ? sent[Math.floor(random() * sent.length)]! : makeEvent({ topic: `t${Math.floor(random() * 4)}` }),
    );
    sent.push(...batch);
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
  const allAcked = new Map<string, TestEvent>();
  const sent: TestEvent[] = [];

  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    const server = await spawnServer(dbPath);
    const publishers = Array.from({ length: PUBLISHERS }, () => publishUntilDead(server, sent, random));
    await new Promise((resolve) => setTimeout(resolve, 300 + random() * 700));
    await server.kill();
    for (const acked of await Promise.all(publishers)) for (const e of acked) allAcked.set(keyOf(e), e);

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

    const republished = [...allAcked.values()];
    let unique = 0;
    for (let i = 0; i < republished.length; i += 1000) {
      unique += (await restarted.publish(republished.slice(i, i + 1000))).body.unique;
    }
    t.equal(unique, 0, `cycle ${cycle}: republishing every acknowledged event yields only duplicates`);
    t.equal(await restarted.stop(), 0);
  }
  t.ok(allAcked.size > 100, `enough traffic was acknowledged to mean something (${allAcked.size})`);
});
