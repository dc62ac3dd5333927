import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { makeEvent } from './helpers/events.js';
import { spawnServer } from './helpers/server-process.js';

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
  await t.rejects(spawnServer(join(t.testdir(), 'b.db'), { RETENTION: 'debug.*=1 day' }),
    /exited with 2.*RETENTION rule 1: "1 day" is not an age/s, 'a bad retention rule, with the rule named');
});

t.test('the largest REQUEST_TIMEOUT_MS starts (Node checks its header timeout against it at creation)', async (t) => {
  const server = await spawnServer(join(t.testdir(), 'a.db'), { REQUEST_TIMEOUT_MS: '600000' });
  t.teardown(() => server.kill());
  t.same(await server.get('/healthz'), { status: 'ok' });
});
