import { readFileSync } from 'node:fs';
import type { InjectOptions } from 'fastify';
import t from 'tap';
import { ERROR_STATUS } from '../src/http/errors.js';
import { makeEvent } from './helpers/events.js';
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
