import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/**
 * An onRequest hook that lets through only `Authorization: Bearer <token>`. Both sides are hashed first so
 * the comparison is constant-time whatever the lengths, and the token's length does not leak either.
 */
export function requireBearer(token: string) {
  const expected = digest(token);
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const header = request.headers.authorization ?? '';
    const presented = header.startsWith('Bearer ') ? header.slice(7) : '';
    if (presented !== '' && timingSafeEqual(digest(presented), expected)) return;
    await reply
      .code(401)
      .header('www-authenticate', 'Bearer realm="pubsub-aggregator"')
      .send({ statusCode: 401, error: 'Unauthorized', message: 'this route needs Authorization: Bearer <AUTH_TOKEN>' });
  };
}
