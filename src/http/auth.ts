import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/**
 * An onRequest hook that lets through only `Authorization: Bearer <token>`. Both sides are hashed first so
 * the comparison is constant-time whatever the lengths, and the token's length does not leak either.
 */
export function requireBearer(token: string) {
  const expected = digest(token);
  return async (request: FastifyRequest): Promise<void> => {
    const header = request.headers.authorization ?? '';
    const presented = header.startsWith('Bearer ') ? header.slice(7) : '';
    if (presented !== '' && timingSafeEqual(digest(presented), expected)) return;
    throw new ApiError('UNAUTHORIZED', 'this route needs Authorization: Bearer <AUTH_TOKEN>');
  };
}
