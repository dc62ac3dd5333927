import { mkdirSync, rmSync } from 'node:fs';
import t from 'tap';
import { makeEvent } from './helpers/events.js';
import { startAggregator } from './helpers/in-process.js';

t.test('a worker that crashes on every start is left down, and /readyz says why', async (t) => {
  const agg = await startAggregator(t, { fault: 'before-commit:1' });
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
