import { mkdirSync, rmSync } from 'node:fs';
import t from 'tap';
import { makeEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { startAggregator } from './helpers/in-process.js';

t.test('a worker that crashes on every start is left down, and /readyz says why', async (t) => {
  const agg = await startAggregator(t, { fault: 'before-commit:1' });
  // Put a directory where the database file was: every restarted worker will fail to open it.
  for (const suffix of ['', '-wal', '-shm']) rmSync(agg.config.dbPath + suffix, { force: true });
  mkdirSync(agg.config.dbPath);

  t.equal((await agg.publish(makeEvent())).status, 503, 'the request in the crashed batch gets 503');
  // Issue 18 H2: a crash's own message may hold internal values; it goes to the log, not into answers.
  const restarting = await agg.request('GET', '/readyz');
  t.notMatch(JSON.stringify(restarting.body), /injected fault/, 'the crash\'s message is not shown');
  // "not restarted" is the supervisor's state with no worker and no restart timer: it has given up.
  await eventually(() => agg.pipeline.notReadyReason(), { what: 'the supervisor to give up', timeout: 60_000, until: (reason) => /not restarted/.test(reason ?? '') });
  const ready = await agg.request('GET', '/readyz');
  t.equal(ready.status, 503);
  t.match(ready.body.reason, /crashed 5 times within 60 s and is not restarted: .*unable to open database file/);
  t.equal(agg.pipeline.stats().consumer.restarts, 4, 'four restarts were tried');

  // A publish now meets the given-up consumer; it must be refused without waking a new restart.
  const refused = await agg.publish(makeEvent());
  t.equal(refused.status, 503);
  t.match(refused.body.message, /not restarted/);
  t.equal(agg.pipeline.stats().consumer.restarts, 4, 'and then no more: no hot crash loop');
  t.match(agg.pipeline.notReadyReason(), /not restarted/, 'nor one scheduled');
});
