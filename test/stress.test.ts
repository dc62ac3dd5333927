import t from 'tap';
import { SyntheticEvents } from '../src/clients/synthetic-events.js';
import { keyOf, prng } from './helpers/events.js';
import { startAggregator } from './helpers/in-process.js';
import { readAllEvents } from './helpers/server-process.js';

const TOTAL = 5_000;
const DUPLICATE_SHARE = 0.2;
const CLIENTS = 10;

t.test(`${TOTAL} single-event POSTs with about 20% duplicates from ${CLIENTS} clients over HTTP`, async (t) => {
  const agg = await startAggregator(t);
  const url = await agg.app.listen({ port: 0, host: '127.0.0.1' });

  const random = prng(5);
  const source = new SyntheticEvents({ duplicateRatio: DUPLICATE_SHARE, topics: 8, idKind: 'v4', random });
  const work = source.batch(TOTAL);
  const { uniqueCount } = source;
  // Shuffle so duplicates arrive interleaved, some before or while their original is still in flight.
  for (let i = work.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [work[i], work[j]] = [work[j]!, work[i]!];
  }

  const started = performance.now();
  let next = 0;
  let acked = { unique: 0, duplicates: 0, failed: 0 };
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (next < work.length) {
      const event = work[next++]!;
      const res = await fetch(`${url}/publish`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(event),
      });
      if (res.status !== 200) acked.failed++;
      const body = (await res.json()) as { unique: number; duplicates: number };
      acked = { ...acked, unique: acked.unique + body.unique, duplicates: acked.duplicates + body.duplicates };
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  t.comment(`${TOTAL} POSTs acknowledged in ${seconds.toFixed(2)} s (${Math.round(TOTAL / seconds)} events/s)`);
  t.ok(seconds < 60, 'finishes within a generous bound');

  t.same(acked, { unique: uniqueCount, duplicates: TOTAL - uniqueCount, failed: 0 }, 'the acks add up exactly');
  const stats = await agg.get('/stats');
  t.match(stats, { received: TOTAL, unique_processed: uniqueCount, duplicate_dropped: TOTAL - uniqueCount, queue_depth: 0 });
  t.equal(stats.topics.length, 8);
  const stored = await readAllEvents((path) => agg.get(path));
  t.equal(stored.length, uniqueCount);
  t.equal(new Set(stored.map(keyOf)).size, uniqueCount, 'every stored key is unique');
});
