import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { keyOf, makeEvent } from './helpers/events.js';
import { readAllEvents, spawnServer } from './helpers/server-process.js';

t.test('dedup and counters survive a restart; SIGTERM drains queued events first', async (t) => {
  const dbPath = join(t.testdir(), 'aggregator.db');
  const events = Array.from({ length: 250 }, (_, i) => makeEvent({ topic: `topic-${i % 5}` }));

  const first = await spawnServer(dbPath);
  for (let i = 0; i < 200; i += 20) t.equal((await first.publish(events.slice(i, i + 20))).status, 200);
  t.equal((await first.publish(events.slice(200), '?ack=queued')).status, 202);
  t.equal(await first.stop(), 0, 'SIGTERM exits 0');
  t.ok(first.logs.some((l) => l.msg === 'stopped cleanly'), 'logs a clean stop');

  const second = await spawnServer(dbPath);
  t.teardown(() => second.kill());
  let stats = await second.get('/stats');
  t.match(stats, { received: 250, unique_processed: 250, duplicate_dropped: 0 }, 'queued events were drained at stop');
  t.same([...stats.topics].sort(), ['topic-0', 'topic-1', 'topic-2', 'topic-3', 'topic-4']);

  const again = await second.publish(events);
  t.same(again.body, { accepted: 250, unique: 0, duplicates: 250 }, 'every republished event is a duplicate');
  stats = await second.get('/stats');
  t.match(stats, { received: 500, unique_processed: 250, duplicate_dropped: 250 });
  const stored = await readAllEvents(second.get);
  t.equal(stored.length, 250);
  t.equal(new Set(stored.map(keyOf)).size, 250);
  const duplicateLogs = second.logs.filter((l) => l.msg === 'duplicate dropped');
  t.equal(duplicateLogs.length, 250, 'one log line per dropped duplicate');
  t.match(duplicateLogs[0], { topic: events[0]!.topic, event_id: events[0]!.event_id, source: events[0]!.source });
});

t.test('a newline in an event id cannot forge a log line', async (t) => {
  const server = await spawnServer(join(t.testdir(), 'aggregator.db'));
  t.teardown(() => server.kill());
  const forged = makeEvent({ event_id: 'x"}\n{"level":60,"msg":"forged"}' });
  t.same((await server.publish([forged, forged])).body, { accepted: 2, unique: 1, duplicates: 1 });
  await server.stop();
  t.notOk(server.logs.some((l) => l.msg === 'forged'), 'no forged entry');
  t.ok(server.logs.some((l) => l.msg === 'duplicate dropped' && l.event_id === forged.event_id), 'the id is logged verbatim, escaped');
});

t.test('a database that cannot be opened stops start-up with a clear error', async (t) => {
  const notADirectory = join(t.testdir(), 'file');
  writeFileSync(notADirectory, '');
  await t.rejects(spawnServer(join(notADirectory, 'aggregator.db')), /exited with 1/);
});

t.test('bad configuration is refused before start', async (t) => {
  await t.rejects(spawnServer(join(t.testdir(), 'a.db'), { RING_BYTES: '1000' }), /exited with 2/);
});
