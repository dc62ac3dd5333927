import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { makeEvent } from './helpers/events.js';
import { startAggregator } from './helpers/in-process.js';
import { spawnServer } from './helpers/server-process.js';

const TOKEN = 's3cret-token';
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

t.test('without AUTH_TOKEN every route is open', async (t) => {
  const agg = await startAggregator(t);
  t.equal((await agg.publish(makeEvent())).statusCode, 200);
});

t.test('with AUTH_TOKEN, publishing needs the bearer token; reads stay open by default', async (t) => {
  const agg = await startAggregator(t, { authToken: TOKEN });
  const publish = (headers: Record<string, string>) =>
    agg.app.inject({ method: 'POST', url: '/publish', payload: makeEvent(), headers });

  const missing = await publish({});
  t.equal(missing.statusCode, 401);
  t.equal(missing.headers['www-authenticate'], 'Bearer realm="pubsub-aggregator"');
  t.match(missing.json(), { message: /Authorization: Bearer/ });
  t.equal((await publish(bearer('wrong'))).statusCode, 401, 'a wrong token');
  t.equal((await publish(bearer(`${TOKEN}x`))).statusCode, 401, 'a longer token');
  t.equal((await publish({ authorization: TOKEN })).statusCode, 401, 'a token without the Bearer scheme');
  t.equal((await publish(bearer(TOKEN))).statusCode, 200, 'the right token');
  t.equal((await agg.get('/stats')).received, 1, 'refused requests were not counted');
  t.equal((await agg.get('/events')).length, 1);
  t.same(await agg.get('/healthz'), { status: 'ok' });
});

t.test('AUTH_READS puts /events and /stats behind the token too, never the health checks', async (t) => {
  const agg = await startAggregator(t, { authToken: TOKEN, authReads: true });
  for (const url of ['/events', '/stats']) {
    t.equal((await agg.app.inject({ method: 'GET', url })).statusCode, 401, `${url} without a token`);
    t.equal((await agg.app.inject({ method: 'GET', url, headers: bearer(TOKEN) })).statusCode, 200, `${url} with it`);
  }
  for (const url of ['/healthz', '/readyz']) t.equal((await agg.app.inject({ method: 'GET', url })).statusCode, 200, url);
});

t.test('the token never appears in the logs', async (t) => {
  const server = await spawnServer(join(t.testdir(), 'aggregator.db'), { AUTH_TOKEN: TOKEN });
  t.teardown(() => server.kill());
  const started = server.logs.find((l) => l.msg === 'aggregator listening') as { config: Record<string, unknown> };
  t.equal(started.config.authToken, '[Redacted]');
  t.notOk(JSON.stringify(server.logs).includes(TOKEN));
});

/** Resolves with how long the server took to close a raw connection after `send`. */
function closedAfter(url: string, send: string): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(Number(port), hostname, () => socket.write(send));
    socket.on('data', () => {});
    socket.on('error', reject);
    socket.on('close', () => resolve(Date.now() - started));
  });
}

t.test('slow clients: an unfinished request and an idle keep-alive connection are closed', async (t) => {
  const agg = await startAggregator(t, { requestTimeoutMs: 500, keepAliveTimeoutMs: 300 });
  const url = await agg.app.listen({ port: 0, host: '127.0.0.1' });

  const slowloris = await closedAfter(url, 'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"topic":');
  t.ok(slowloris >= 400 && slowloris < 5_000, `a request still incomplete after 500 ms is cut off (${slowloris} ms)`);

  const idle = await closedAfter(url, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
  t.ok(idle >= 250 && idle < 5_000, `an idle keep-alive connection is closed (${idle} ms)`);
});
