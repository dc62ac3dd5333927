import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { loadConfig } from '../src/config.js';
import { makeEvent } from './helpers/events.js';
import { startAggregator } from './helpers/in-process.js';
import { spawnServer } from './helpers/server-process.js';

const TOKEN = 's3cret-token';
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

t.test('without AUTH_TOKEN every route is open', async (t) => {
  const agg = await startAggregator(t);
  t.equal((await agg.publish(makeEvent())).status, 200);
});

t.test('with AUTH_TOKEN, publishing needs the bearer token; reads stay open by default', async (t) => {
  const agg = await startAggregator(t, { authToken: TOKEN });
  const publish = (headers: Record<string, string>) =>
    agg.app.inject({ method: 'POST', url: '/publish', payload: makeEvent(), headers });

  const missing = await publish({});
  t.equal(missing.statusCode, 401);
  t.equal(missing.headers['www-authenticate'], 'Bearer realm="pubsub-aggregator"');
  t.match(missing.json(), { code: 'UNAUTHORIZED', message: /Authorization: Bearer/ });
  t.equal((await publish(bearer('wrong'))).statusCode, 401, 'a wrong token');
  t.equal((await publish(bearer(`${TOKEN}x`))).statusCode, 401, 'a longer token');
  t.equal((await publish({ authorization: TOKEN })).statusCode, 401, 'a token without the Bearer scheme');
  t.equal((await publish(bearer(TOKEN))).statusCode, 200, 'the right token');
  t.equal((await agg.get('/stats')).received, 1, 'refused requests were not counted');
  t.equal((await agg.get('/events')).length, 1);
  t.same(await agg.get('/healthz'), { status: 'ok' });
});

t.test('AUTH_READS puts every route but the health checks behind a token; the read token cannot publish', async (t) => {
  const READ = 'read-only-token';
  const agg = await startAggregator(t, { authToken: TOKEN, authReadToken: READ, authReads: true });
  const get = (url: string, headers: Record<string, string> = {}) => agg.app.inject({ method: 'GET', url, headers });
  for (const url of ['/events', '/stats', '/metrics', '/docs', '/docs/json', '/', '/no-such-route']) {
    const refused = await get(url);
    t.equal(refused.statusCode, 401, `${url} without a token`);
    t.equal(refused.json().code, 'UNAUTHORIZED');
    t.same(refused.headers['www-authenticate'], ['Bearer realm="pubsub-aggregator"', 'Basic realm="pubsub-aggregator", charset="UTF-8"'],
      'browsers are offered Basic, so the dashboard can be opened with the token');
    t.not((await get(url, bearer(READ))).statusCode, 401, `${url} with the read token`);
    t.not((await get(url, bearer(TOKEN))).statusCode, 401, `${url} with the publish token`);
  }
  t.equal((await get('/stats', { authorization: `bEaReR ${READ}` })).statusCode, 200, 'the scheme is case-insensitive (RFC 9110)');
  const basic = Buffer.from(`anyone:${READ}`).toString('base64');
  t.equal((await get('/', { authorization: `Basic ${basic}` })).statusCode, 200, 'Basic with the token as password');
  t.equal((await get('/stats', { authorization: `Basic ${Buffer.from('anyone:wrong').toString('base64')}` })).statusCode, 401);
  for (const url of ['/healthz', '/readyz']) t.equal((await get(url)).statusCode, 200, `${url} stays open`);

  const publish = (headers: Record<string, string>) =>
    agg.app.inject({ method: 'POST', url: '/publish', payload: makeEvent(), headers });
  t.equal((await publish(bearer(READ))).statusCode, 401, 'the read token cannot publish');
  t.equal((await publish({ authorization: `bearer ${TOKEN}` })).statusCode, 200, 'the publish token in any case');
});

t.test('AUTH_READS without any token, or a read token without AUTH_READS, refuses to start', async (t) => {
  t.throws(() => loadConfig([], { AUTH_READS: 'true' }), { name: 'ConfigError', message: /AUTH_READS=true needs AUTH_TOKEN or AUTH_READ_TOKEN/ });
  t.throws(() => loadConfig([], { AUTH_READ_TOKEN: 'x' }), { name: 'ConfigError', message: /AUTH_READ_TOKEN is used only with AUTH_READS=true/ });
  t.equal(loadConfig([], { AUTH_READS: 'true', AUTH_READ_TOKEN: 'x' }).authReads, true, 'reads behind a token, publishing open');
  const server = spawnServer(join(t.testdir(), 'aggregator.db'), { AUTH_READS: 'true' });
  await t.rejects(server, /exited with 2 before listening: configuration error: AUTH_READS=true needs/);
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
