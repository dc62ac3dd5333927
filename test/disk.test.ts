import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { makeEvent, type TestEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { startAggregator, type TestAggregator } from './helpers/in-process.js';
import { requires } from './helpers/requires.js';

const bigEvent = () => makeEvent({ payload: { blob: 'x'.repeat(1000) } });

/** Publishes batches until one is refused; returns what was acknowledged and the refusal. */
async function fillUntilRefused(agg: TestAggregator, maxRequests = 2_000) {
  const acked: TestEvent[] = [];
  for (let i = 0; i < maxRequests; i++) {
    const batch = Array.from({ length: 20 }, bigEvent);
    const res = await agg.publish(batch);
    if (res.status !== 200) return { acked, refusal: res };
    acked.push(...batch);
  }
  throw new Error(`the store never filled up after ${maxRequests} requests`);
}

t.test('a full store (SQLITE_FULL) gives clear 503s, no partial batch, no crash loop; a bigger cap recovers', async (t) => {
  const dir = t.testdir();
  const dbPath = join(dir, 'aggregator.db');
  const agg = await startAggregator(t, { dbPath, dbMaxBytes: 512 * 1024 });
  const { acked, refusal } = await fillUntilRefused(agg);
  t.ok(acked.length > 0, `${acked.length} events fitted before the cap`);
  t.equal(refusal.status, 503);
  t.equal(refusal.headers['retry-after'], '1');
  t.match(refusal.body.message, /SQLITE_FULL/);

  const ready = await agg.request('GET', '/readyz');
  t.equal(ready.status, 503);
  t.match(ready.body, { reason: /store error: SQLITE_FULL/ });
  const again = await agg.publish(bigEvent());
  t.equal(again.status, 503, 'new publishes are refused at once while the store fails');

  // Nothing to wait for: the point is that nothing happens. In 300 ms the worker fails its commit again
  // (it retries after 50, then 100 ms); had it crashed instead, the supervisor would have restarted it
  // within 100 ms and counted it.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const stats = await agg.get('/stats');
  t.equal(stats.consumer.restarts, 0, 'the worker retries; it does not crash-loop');
  t.equal(stats.unique_processed, acked.length, 'exactly the acknowledged events are stored: no partial batch');
  t.equal((await agg.get(`/events?limit=10000`)).length, acked.length);
  await agg.close();

  const bigger = await startAggregator(t, { dbPath });
  t.match(await bigger.get('/stats'), { unique_processed: acked.length }, 'all acknowledged events survived');
  t.same((await bigger.publish(acked.slice(0, 50))).body, { accepted: 50, unique: 0, duplicates: 50 });
  t.equal((await bigger.publish(bigEvent())).status, 200, 'publishing works again');
});

/** Mounts a small tmpfs: a real filesystem that runs out of space or turns read-only on demand. */
function tmpfs(t: Test, options: string): string | undefined {
  if (!requires(t, process.getuid?.() === 0, 'root, to mount a tmpfs')) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'aggregator-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  t.teardown(() => {
    execFileSync('umount', ['-l', dir]);
    rmdirSync(dir);
  });
  return dir;
}

t.test('a disk that fills up: 503 while full, recovery by itself once space is freed', async (t) => {
  const dir = tmpfs(t, 'size=2m');
  if (!dir) return;
  const filler = join(dir, 'filler');
  writeFileSync(filler, Buffer.alloc(1024 * 1024));
  const agg = await startAggregator(t, { dbPath: join(dir, 'aggregator.db') });
  const { acked, refusal } = await fillUntilRefused(agg);
  t.equal(refusal.status, 503);
  t.match(refusal.body.message, /SQLITE_(FULL|IOERR)/);
  t.equal((await agg.request('GET', '/readyz')).status, 503);

  rmSync(filler);
  await eventually(async () => (await agg.request('GET', '/readyz')).status, { what: 'recovery', timeout: 15_000, until: (status) => status === 200 });
  t.equal((await agg.publish(makeEvent())).status, 200, 'accepts again without a restart');
  await agg.settle();
  const stats = await agg.get('/stats');
  t.equal(stats.consumer.restarts, 0);
  t.ok(stats.unique_processed >= acked.length + 1, 'every acknowledged event is stored');
  t.equal(stats.unique_processed, (await agg.get('/events?limit=10000')).length, 'counters equal the store');
});

t.test('a database file deleted while running: clear 503s instead of acknowledging into a ghost file', async (t) => {
  const dir = t.testdir();
  const agg = await startAggregator(t, { dbPath: join(dir, 'data', 'aggregator.db') });
  t.equal((await agg.publish(makeEvent())).status, 200);
  rmSync(join(dir, 'data'), { recursive: true });
  const refused = await agg.publish(makeEvent());
  t.equal(refused.status, 503);
  t.match(refused.body.message, /STORE_FILE_GONE: the database file .* was removed or replaced while open/);
  t.match((await agg.request('GET', '/readyz')).body, { status: 'not_ready', reason: /STORE_FILE_GONE/ });
  t.equal((await agg.get('/stats')).consumer.restarts, 0, 'no crash loop');
});

t.test('a read-only data directory stops start-up with a clear error', async (t) => {
  const dir = tmpfs(t, 'size=1m,ro');
  if (!dir) return;
  await t.rejects(startAggregator(t, { dbPath: join(dir, 'aggregator.db') }), {
    message: /cannot open the database .*aggregator.db: .*\((SQLITE_CANTOPEN|SQLITE_READONLY)\)/,
  });
});
