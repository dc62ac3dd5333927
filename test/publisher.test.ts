import t from 'tap';
import { freePort } from '../scripts/free-port.js';
import { parseRetryAfter, retryDelayMs } from '../src/clients/backoff.js';
import { SyntheticEvents } from '../src/clients/synthetic-events.js';
import { runLoad } from '../src/clients/load-publisher.js';
import { startAggregator } from './helpers/in-process.js';
import { sqliteStore } from './helpers/stores.js';

const options = { rate: 0, timeoutMs: 5_000, maxAttempts: 50 };

t.test('backoff: full jitter under an exponential cap, never earlier than Retry-After', async (t) => {
  for (let attempt = 0; attempt < 12; attempt++) {
    const delay = retryDelayMs(attempt);
    t.ok(delay >= 0 && delay <= Math.min(10_000, 100 * 2 ** attempt), `attempt ${attempt}: ${delay.toFixed(0)} ms`);
  }
  t.ok(retryDelayMs(0, 2) >= 2_000, 'Retry-After: 2 is honoured');
  t.equal(parseRetryAfter('3'), 3);
  t.equal(parseRetryAfter(null), undefined);
  t.ok(Math.abs(parseRetryAfter(new Date(Date.now() + 5_000).toUTCString())! - 5) <= 1, 'an HTTP date');
});

t.test('the synthetic events re-send the chosen share of earlier events', async (t) => {
  const source = new SyntheticEvents({ duplicateRatio: 0.2, topics: 4, idKind: 'v7' });
  const events = source.batch(10_000);
  const keys = new Set(events.map((e) => `${e.topic}/${e.event_id}`));
  t.equal(keys.size, source.uniqueCount);
  t.equal(source.uniqueCount + source.duplicateCount, 10_000);
  t.ok(source.duplicateCount > 1_700 && source.duplicateCount < 2_300, `about 20% duplicates (${source.duplicateCount})`);
  t.equal(new Set(events.map((e) => e.topic)).size, 4);
  const ids = events.filter((e, i) => events.findIndex((x) => x.event_id === e.event_id) === i).map((e) => e.event_id);
  t.same(ids, [...ids].sort(), 'v7 ids are time-ordered');
});

t.test('the publisher gets every event acknowledged through 503s, with exact counts', async (t) => {
  const agg = await startAggregator(t, { ringBytes: 16 * 1024 });
  const url = await agg.app.listen({ port: 0, host: '127.0.0.1' });
  // Stall the store for a while so the small ring fills and the publisher meets 503s.
  const letGo = await sqliteStore.blockWrites(agg.config);
  setTimeout(() => void letGo(), 400);

  const source = new SyntheticEvents({ duplicateRatio: 0.2, topics: 3, idKind: 'v4' });
  const report = await runLoad(source, { ...options, urls: [url], events: 3_000, batchSize: 20, concurrency: 8 });
  t.ok(report.retries > 0, `it had to retry (${report.retries} retries, codes ${JSON.stringify(report.statusCodes)})`);
  t.match(report, { sent: 3_000, acked: 3_000, failed: 0 });
  await agg.settle();
  const stats = await agg.get('/stats');
  t.equal(stats.unique_processed, source.uniqueCount, 'every generated event stored once');
  t.equal(stats.received, stats.unique_processed + stats.duplicate_dropped);
});

t.test('the publisher waits out a server that is not up yet', async (t) => {
  const agg = await startAggregator(t);
  const port = await freePort();
  setTimeout(() => void agg.app.listen({ port, host: '127.0.0.1' }), 500);
  const source = new SyntheticEvents({ duplicateRatio: 0, topics: 1, idKind: 'v4' });
  const report = await runLoad(source, { ...options, urls: [`http://127.0.0.1:${port}`], events: 50, batchSize: 5, concurrency: 2 });
  t.match(report, { acked: 50, failed: 0, unique: 50 });
  t.ok(report.retries > 0, 'connection refusals were retried');
});

t.test('a refused request (4xx) is not retried', async (t) => {
  const agg = await startAggregator(t, { authToken: 'secret' });
  const url = await agg.app.listen({ port: 0, host: '127.0.0.1' });
  const source = new SyntheticEvents({ duplicateRatio: 0, topics: 1, idKind: 'v4' });
  const report = await runLoad(source, { ...options, urls: [url], events: 10, batchSize: 5, concurrency: 1 });
  t.match(report, { acked: 0, failed: 10, retries: 0, statusCodes: { 401: 2 } });
});

t.test('the topic cap (429 TOPIC_LIMIT) is not retried: waiting does not lift it', async (t) => {
  const agg = await startAggregator(t, { maxTopics: 1 });
  const url = await agg.app.listen({ port: 0, host: '127.0.0.1' });
  const source = new SyntheticEvents({ duplicateRatio: 0, topics: 2, idKind: 'v4' });
  const report = await runLoad(source, { ...options, urls: [url], events: 2, batchSize: 2, concurrency: 1 });
  t.match(report, { acked: 0, failed: 2, retries: 0, statusCodes: { 429: 1 } });
});

t.test('the publisher sends gzip bodies with --gzip, acknowledged like plain ones', async (t) => {
  const agg = await startAggregator(t);
  let gzipped = 0;
  agg.app.addHook('onRequest', async (request) => void (request.headers['content-encoding'] === 'gzip' && gzipped++));
  const url = await agg.app.listen({ port: 0, host: '127.0.0.1' });
  const source = new SyntheticEvents({ duplicateRatio: 0.2, topics: 2, idKind: 'v4' });
  const report = await runLoad(source, { ...options, urls: [url], events: 500, batchSize: 50, concurrency: 2, gzip: true });
  t.match(report, { acked: 500, failed: 0, unique: source.uniqueCount });
  t.equal(gzipped, report.requests, 'every request was gzip');
});
