import type { FastifyInstance } from 'fastify';
import secureJson from 'secure-json-parse';
import { ApiError } from './errors.js';

/**
 * Fastify's own JSON parser answers every failure with the same "Body is not valid JSON"; this one says
 * what is wrong (where the syntax breaks, or that a __proto__ / constructor.prototype key was refused —
 * such keys could pollute prototypes downstream and are never accepted).
 */
export function registerJsonBodyParser(app: FastifyInstance): void {
  // JSON only: a text/plain body would otherwise reach validation as a string instead of getting a 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, secureJson.parse(body as string, undefined, { protoAction: 'error', constructorAction: 'error' }));
    } catch (error) {
      done(new ApiError('INVALID_JSON', `invalid JSON body: ${(error as Error).message}`), undefined);
    }
  });
}
