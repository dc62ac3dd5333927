import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../errors.js';

/**
 * Who may call a route: anyone (health checks), holders of a read or the publish token (reads, when
 * AUTH_READS is on), or holders of the publish token. Routes say it in their `config.access`; a route that
 * does not (swagger-ui's, unknown URLs) counts as a read, so nothing is left open by omission. `admin` is a
 * read for these tokens; with AUTH_TOKENS_FILE, only an admin token's (scoped-access.ts).
 */
export type Access = 'public' | 'read' | 'publish' | 'admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
}

export interface AccessTokens {
  /** AUTH_TOKEN: publishes, and reads too; empty: publishing is open. */
  publish: string;
  /** AUTH_READ_TOKEN: reads only, so a dashboard never holds the publish token. */
  read: string;
  /** AUTH_READS: reads need a token as well. */
  reads: boolean;
}

const BEARER = 'Bearer realm="pubsub-aggregator"';
/** Basic as well, so that a browser opening the dashboard asks for the token. */
export const AUTHENTICATE = [BEARER, 'Basic realm="pubsub-aggregator", charset="UTF-8"'];

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/**
 * The token a request presents. `Bearer <token>`, the scheme case-insensitive (RFC 9110 §11.1); or
 * `Basic` with the token as password, which is what a browser sends after its login prompt, so the
 * dashboard page can be opened with the read token and its own requests carry it without any script
 * keeping it.
 */
export function presentedToken(header: string | undefined): string {
  const match = /^\s*(bearer|basic)\s+(\S+)\s*$/i.exec(header ?? '');
  if (!match) return '';
  if (match[1]!.toLowerCase() === 'bearer') return match[2]!;
  const decoded = Buffer.from(match[2]!, 'base64').toString('utf8');
  return decoded.slice(decoded.indexOf(':') + 1);
}

/**
 * An onRequest hook enforcing each route's access. Tokens are compared as SHA-256 digests with
 * timingSafeEqual, every accepted token each time, so neither a token's content nor its length leaks.
 */
export function accessControl(tokens: AccessTokens) {
  const publish = tokens.publish ? [digest(tokens.publish)] : [];
  const read = [tokens.publish, tokens.read].filter((token) => token !== '').map(digest);
  return async (request: FastifyRequest): Promise<void> => {
    const access = request.routeOptions.config?.access ?? 'read';
    const accepted = access === 'publish' ? publish : access !== 'public' && tokens.reads ? read : [];
    if (accepted.length === 0) return;
    const presented = presentedToken(request.headers.authorization);
    const given = digest(presented);
    let granted = false;
    for (const expected of accepted) granted = timingSafeEqual(given, expected) || granted;
    if (granted && presented !== '') return;
    throw access === 'publish'
      ? new ApiError('UNAUTHORIZED', 'this route needs Authorization: Bearer <AUTH_TOKEN>', { authenticate: BEARER })
      : new ApiError('UNAUTHORIZED', 'this route needs Authorization: Bearer <AUTH_READ_TOKEN or AUTH_TOKEN>', { authenticate: AUTHENTICATE });
  };
}
