import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { keyOf, makeEvent, type TestEvent } from './helpers/events.js';
import { readAllEvents, spawnServer } from './helpers/server-process.js';
import { sqliteStore } from './helpers/stores.js';

const FLOOD_MS = 3_000;
const CLIENTS = 6;

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

t.test('a flood against a small ring: only 200/202 or 503, every accepted event stored, memory bounded, monitoring responsive', async (t) => {
  const dbPath = join(t.testdir(), 'aggregator.db');
  const server = await spawnServer(dbPath, { RING_BYTES: String(64 * 1024), LOG_LEVEL: 'info' });
  t.teardown(() => server.kill());
  const pid = server.child.pid!;
  const deadline = Date.now() + FLOOD_MS;

  // A slow disk: another connection holds SQLite's write lock for 300 ms out of every 500 ms.
  const stall = (async () => {
    while (Date.now() < deadline) {
      const letGo = await sqliteStore.blockWrites({ dbPath, databaseUrl: '' });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await letGo();
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();

  const codes: Record<number, number> = {};
  const acked: TestEvent[] = [];
  // Half the clients wait for commits, half only for the queue (which fills it much faster).
  const publishers = Array.from({ length: CLIENTS }, async (_, client) => {
    while (Date.now() < deadline) {
      const batch = Array.from({ length: 50 }, () => makeEvent({ payload: { blob: 'z'.repeat(200) } }));
      const res = await server.publish(batch, client % 2 ? '?ack=queued' : '');
      codes[res.status] = (codes[res.status] ?? 0) + 1;
      if (res.status === 200 || res.status === 202) acked.push(...batch);
    }
  });

  const probes = { healthz: [] as number[], stats: [] as number[] };
  let maxRss = 0;
  const monitor = (async () => {
    while (Date.now() < deadline) {
      for (const route of ['healthz', 'stats'] as const) {
        const started = performance.now();
        await server.get(`/${route}`);
        probes[route].push(performance.now() - started);
      }
      maxRss = Math.max(maxRss, rssMiB(pid));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();

  await Promise.all([stall, monitor, ...publishers]);
  t.comment(`answers: ${JSON.stringify(codes)}; max RSS ${maxRss.toFixed(0)} MiB`);
  t.same(Object.keys(codes).sort(), ['200', '202', '503'], 'every request got 200, 202 or 503, and each happened');
  t.ok(maxRss < 400, `RSS stays bounded (${maxRss.toFixed(0)} MiB)`);
  for (const [route, times] of Object.entries(probes)) {
    const worst = Math.max(...times);
    t.ok(times.length > 10 && worst < 1_000, `/${route} kept answering (${times.length} probes, worst ${worst.toFixed(0)} ms)`);
  }

  const stored = await readAllEvents(server.get);
  const keys = new Set(stored.map(keyOf));
  t.ok(acked.every((e) => keys.has(keyOf(e))), `all ${acked.length} acknowledged events are stored`);
  const stats = await server.get('/stats');
  t.equal(stats.unique_processed, stored.length, 'counters equal the store');
  t.ok(stats.rejected.queue_full > 0, 'the refusals were for a full queue');
});
