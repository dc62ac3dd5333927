import { mkdirSync, rmSync } from 'node:fs';
import t, { type Test } from 'tap';
import { makeEvent } from './helpers/events.js';
import { startAggregator, type TestAggregator } from './helpers/in-process.js';

/** Starts an aggregator whose first consumer worker dies at the given point of its second batch. */
async function withFault(t: Test, fault: string): Promise<TestAggregator> {
  process.env.AGGREGATOR_FAULT = fault;
  try {
    return await startAggregator(t);
  } finally {
    delete process.env.AGGREGATOR_FAULT;
  }
}

async function waitUntilReady(agg: TestAggregator): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (agg.pipeline.notReadyReason() !== undefined) {
    if (Date.now() > deadline) throw new Error('the consumer did not come back');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

for (const [fault, committed] of [['before-commit:2', false], ['after-commit:2', true]] as const) {
  t.test(`a consumer crash ${committed ? 'after' : 'before'} its commit: 503, restart, nothing lost or counted twice`, async (t) => {
    const agg = await withFault(t, fault);
    const firstBatch = Array.from({ length: 10 }, () => makeEvent());
    const crashBatch = Array.from({ length: 10 }, () => makeEvent());
    t.same((await agg.publish(firstBatch)).body, { accepted: 10, unique: 10, duplicates: 0 });

    const started = Date.now();
    const crashed = await agg.publish(crashBatch);
    t.equal(crashed.statusCode, 503, 'the waiting request is answered 503, not left hanging');
    t.equal(crashed.headers['retry-after'], '1');
    t.match(crashed.body, { message: /consumer worker crashed/ });
    t.ok(Date.now() - started < 5_000, 'and quickly');
    const down = await agg.app.inject({ method: 'GET', url: '/readyz' });
    t.equal(down.statusCode, 503, '/readyz is 503 while the worker is down');
    t.match(down.json(), { status: 'not_ready', reason: /restarting/ });

    await waitUntilReady(agg);
    await agg.settle();
    const stats = await agg.get('/stats');
    t.match(stats, { unique_processed: 20, duplicate_dropped: 0, received: 20, consumer: { restarts: 1, ready: true } },
      'the crashed batch is stored exactly once and not counted as duplicates');
    t.equal((await agg.get('/events')).length, 20);

    const retried = await agg.publish(crashBatch);
    t.same(retried.body, { accepted: 10, unique: 0, duplicates: 10 }, "the publisher's retry finds them stored");
  });
}

t.test('a worker that crashes on every start is left down, and /readyz says why', async (t) => {
  const agg = await withFault(t, 'before-commit:1');
  // Put a directory where the database file was: every restarted worker will fail to open it.
  for (const suffix of ['', '-wal', '-shm']) rmSync(agg.config.dbPath + suffix, { force: true });
  mkdirSync(agg.config.dbPath);

  t.equal((await agg.publish(makeEvent())).statusCode, 503, 'the request in the crashed batch gets 503');
  const deadline = Date.now() + 15_000;
  while (!/not restarted/.test(agg.pipeline.notReadyReason() ?? '') && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const ready = await agg.app.inject({ method: 'GET', url: '/readyz' });
  t.equal(ready.statusCode, 503);
  t.match(ready.json().reason, /crashed 5 times within 60 s and is not restarted: .*unable to open database file/);
  const refused = await agg.publish(makeEvent());
  t.equal(refused.statusCode, 503);
  t.match(refused.body.message, /not restarted/);

  const restarts = agg.pipeline.stats().consumer.restarts;
  t.equal(restarts, 4, 'four restarts were tried');
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  t.equal(agg.pipeline.stats().consumer.restarts, restarts, 'and then no more: no hot crash loop');
});
