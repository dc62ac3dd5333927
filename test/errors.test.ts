import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { InjectOptions } from 'fastify';
import t from 'tap';
import { ERROR_STATUS } from '../src/http/errors.js';
import { makeEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { startAggregator } from './helpers/in-process.js';

const DOC = new URL('../../docs/errors.md', import.meta.url);

t.test('docs/errors.md lists exactly the codes the server answers with, each with its status', async (t) => {
  const rows = [...readFileSync(DOC, 'utf8').matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)];
  t.same(Object.fromEntries(rows.map(([, code, status]) => [code, Number(status)])), ERROR_STATUS);
});

t.test('every refusal has the one error shape with its code, also Fastify\'s own and unknown routes', async (t) => {
  const agg = await startAggregator(t, { bodyLimit: 4096 });
  const cases: [string, InjectOptions, string][] = [
    ['unknown route', { method: 'GET', url: '/nope' }, 'NOT_FOUND'],
    ['bad query', { method: 'GET', url: '/events?limit=0' }, 'INVALID_QUERY'],
    ['bad ack', { method: 'POST', url: '/publish?ack=maybe', payload: makeEvent() }, 'INVALID_QUERY'],
    ['not JSON', { method: 'POST', url: '/publish', payload: 'x', headers: { 'content-type': 'text/plain' } }, 'UNSUPPORTED_MEDIA_TYPE'],
    ['broken JSON', { method: 'POST', url: '/publish', payload: '{"topic":', headers: { 'content-type': 'application/json' } }, 'INVALID_JSON'],
    ['empty body', { method: 'POST', url: '/publish', payload: '', headers: { 'content-type': 'application/json' } }, 'INVALID_JSON'],
    ['too large', { method: 'POST', url: '/publish', payload: makeEvent({ payload: { blob: 'x'.repeat(5000) } }) }, 'BODY_TOO_LARGE'],
    ['wrong shape', { method: 'POST', url: '/publish', payload: [] }, 'INVALID_BODY'],
    ['bad event', { method: 'POST', url: '/publish', payload: makeEvent({ timestamp: 'yesterday' }) }, 'INVALID_EVENT'],
  ];
  for (const [what, request, code] of cases) {
    const res = await agg.app.inject(request);
    const body = res.json();
    t.equal(body.code, code, what);
    t.equal(body.statusCode, res.statusCode, `${what}: statusCode matches the status`);
    t.equal(res.statusCode, ERROR_STATUS[code as keyof typeof ERROR_STATUS], `${what}: the status of its code`);
    t.type(body.error, 'string', `${what}: names the status`);
    t.type(body.message, 'string', `${what}: says what is wrong`);
  }
});

t.test('a request reaching a stopping server gets 503 SHUTTING_DOWN in the one shape, with Retry-After', async (t) => {
  const agg = await startAggregator(t);
  // Holds the stop open (before the listener closes) long enough for a request to arrive meanwhile, as one
  // on a kept-alive connection can.
  let letGo = () => {};
  agg.app.addHook('preClose', () => new Promise<void>((resolve) => (letGo = resolve)));
  const address = await agg.app.listen({ host: '127.0.0.1', port: 0 });
  t.equal((await fetch(`${address}/healthz`)).status, 200);
  const closing = agg.app.close();
  try {
    const res = await eventually(() => fetch(`${address}/healthz`), {
      what: 'the server to turn requests away', timeout: 5_000, interval: 10, until: (reply) => reply.status !== 200,
    });
    t.equal(res.status, 503);
    const body: any = await res.json();
    t.same(body, { statusCode: 503, error: 'Service Unavailable', code: 'SHUTTING_DOWN', message: body.message });
    t.equal(res.headers.get('retry-after'), '1');
  } finally {
    letGo();
  }
  await closing;
});

t.test('Fastify\'s and Node\'s own refusals (bad URL, over-long name, oversized headers, broken HTTP, slow client) in the one shape', async (t) => {
  const agg = await startAggregator(t, { requestTimeoutMs: 500 });
  const injected: [string, InjectOptions, number, string][] = [
    ['a bad percent-encoding in the path', { method: 'GET', url: '/consumers/%E0%A4%A' }, 400, 'INVALID_URL'],
    ['a path segment over 16 KiB', { method: 'GET', url: `/consumers/${'x'.repeat(17 * 1024)}` }, 414, 'URI_TOO_LONG'],
  ];
  for (const [what, request, status, code] of injected) {
    const res = await agg.app.inject(request);
    t.equal(res.statusCode, status, what);
    t.same(Object.keys(res.json()).sort(), ['code', 'error', 'message', 'statusCode'], `${what}: the one shape`);
    t.match(res.json(), { statusCode: status, code }, what);
  }

  await agg.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = agg.app.server.address() as AddressInfo;
  const raw = (request: string) => new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
  const sockets: [string, string, number, string][] = [
    ['a 16 KiB URL', `GET /consumers/${'x'.repeat(16 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
    ['not HTTP at all', 'HELLO THERE\r\n\r\n', 400, 'INVALID_HTTP'],
    ['headers that never end', 'GET /stats HTTP/1.1\r\nHost: x\r\n', 408, 'REQUEST_TIMEOUT'],
  ];
  for (const [what, request, status, code] of sockets) {
    const answer = await raw(request);
    const [head, body] = answer.split('\r\n\r\n');
    t.match(head, new RegExp(`^HTTP/1.1 ${status} `), `${what}: ${status}`);
    t.match(head, /content-type: application\/json/i);
    t.same(JSON.parse(body!), { statusCode: status, error: STATUS_CODES[status], code, message: JSON.parse(body!).message }, `${what}: ${code}`);
    t.equal(ERROR_STATUS[code as keyof typeof ERROR_STATUS], status, `${code} is a documented code of that status`);
  }
});
