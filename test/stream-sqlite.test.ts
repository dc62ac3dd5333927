import { join } from 'node:path';
import t from 'tap';
import { spawnServer } from './helpers/server-process.js';
import { eventually } from './helpers/eventually.js';
import { openStream } from './helpers/sse.js';
import { sqliteStore } from './helpers/stores.js';
import { streamSuite } from './suites/stream.js';

streamSuite(sqliteStore);

t.test('an idle stream gets a keep-alive comment every SSE_KEEPALIVE_MS', async (t) => {
  const server = await spawnServer(join(t.testdir(), 'aggregator.db'), { SSE_KEEPALIVE_MS: '100' });
  t.teardown(() => server.stop());
  const idle = await openStream(server.url, '/events/stream');
  await eventually(() => idle.comments.length, { what: 'two keep-alives', timeout: 5_000, interval: 10, until: (n) => n >= 2 });
  idle.close();
  t.same(idle.comments.slice(0, 2), ['keep-alive', 'keep-alive']);
  t.same(idle.ids, []);
});
