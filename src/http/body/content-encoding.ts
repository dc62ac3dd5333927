import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../errors.js';

/** A request body stream as Fastify reads it after preParsing: it checks Content-Length against the encoded bytes. */
type DecodedBody = Readable & { receivedEncodedLength: number };

/** The methods whose routes read a body: on any other (GET, DELETE...) there is none to decode. */
const BODY_METHODS = new Set(['POST', 'PUT']);

/**
 * `Content-Encoding: gzip` on request bodies (batch publishers over real networks send it). The body is
 * inflated as it arrives, and never past BODY_LIMIT: a zip bomb is refused with 413 once its inflated
 * bytes pass the limit, without inflating the rest. A corrupt stream, or bytes after its end, is a 400;
 * any other encoding a 415.
 */
export function registerContentEncoding(app: FastifyInstance, bodyLimit: number): void {
  app.addHook('preParsing', async (request, _reply, payload) => {
    const encoding = (request.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    if (encoding === 'identity' || !BODY_METHODS.has(request.method)) return payload;
    if (encoding !== 'gzip' && encoding !== 'x-gzip') {
      throw new ApiError('UNSUPPORTED_MEDIA_TYPE', `Content-Encoding "${encoding}" is not supported: send gzip, or no encoding`);
    }
    return gunzipWithin(payload, bodyLimit);
  });
}

function gunzipWithin(payload: Readable, limit: number): DecodedBody {
  const gunzip = createGunzip();
  let inflated = 0;
  const body = new Transform({
    transform(chunk: Buffer, _encoding, next) {
      inflated += chunk.length;
      if (inflated <= limit) next(null, chunk);
      else next(new ApiError('BODY_TOO_LARGE', `the gzip body inflates to more than BODY_LIMIT (${limit} bytes)`));
    },
    // zlib stops at the end of the last member and ignores zero bytes after it: any byte it left is refused.
    flush(done) {
      const trailing = body.receivedEncodedLength - gunzip.bytesWritten;
      done(trailing > 0 ? new ApiError('INVALID_ENCODING', `the gzip body has ${trailing} bytes after its end`) : null);
    },
  }) as Transform & DecodedBody;
  body.receivedEncodedLength = 0;
  payload.on('data', (chunk: Buffer) => (body.receivedEncodedLength += chunk.length));
  gunzip.on('error', (error) => body.destroy(new ApiError('INVALID_ENCODING', `the gzip body is corrupt: ${error.message}`)));
  // Past the limit (or on a corrupt stream) inflating stops at once: the bomb's remaining bytes are never expanded.
  body.on('error', () => {
    payload.unpipe(gunzip);
    gunzip.destroy();
  });
  payload.pipe(gunzip).pipe(body);
  return body;
}
