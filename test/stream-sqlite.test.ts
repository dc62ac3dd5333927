import { join } from 'node:path';
import t from 'tap';
import { spawnServer } from './helpers/server-process.js';
import { openStream } from './helpers/sse.js';
import { sqliteStore } from './helpers/stores.js';
import { streamSuite } from './suites/stream.js';

streamSuite(sqliteStore);

t.test('an idle stream gets a keep-alive comment within 15 s', async (t) => {
  const server = await spawnServer(join(t.testdir(), 'aggregator.db'));
  t.teardown(() => server.stop());
  const stream = await openStream(server.url, '/events/stream');
  await new Promise((resolve) => setTimeout(resolve, 15_500));
  stream.close();
  t.same(stream.comments, ['keep-alive']);
});
