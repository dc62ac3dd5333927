import { randomBytes, randomUUID } from 'node:crypto';
import type { PublishedEvent } from '../src/event.js';

const METHODS = ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE'];
const PATHS = ['/api/v1/orders', '/api/v1/users', '/api/v1/cart/items', '/healthz', '/api/v1/search'];

/**
 * The n-th request log line as services emit them (pino's shape, a random event id and trace id): what
 * compressed reads are measured and tested on, since compression depends on what is compressed.
 */
export function logLine(n: number): PublishedEvent {
  return {
    topic: `api.access-${n % 4}`,
    event_id: randomUUID(),
    timestamp: new Date(Date.UTC(2026, 11, 3, 10) + n * 7).toISOString(),
    source: `api-${n % 3}`,
    payload: {
      level: n % 50 === 0 ? 'warn' : 'info', msg: 'request completed',
      req: { method: METHODS[n % 6], url: `${PATHS[n % 5]}/${(n * 7919) % 100_000}?expand=items`, remoteAddress: `10.0.${n % 7}.${n % 251}` },
      res: { statusCode: n % 50 === 0 ? 503 : 200 }, responseTime: ((n * 37) % 5_000) / 100, traceId: randomBytes(16).toString('hex'),
    },
  };
}
