import type { FastifyInstance } from 'fastify';
import secureJson from 'secure-json-parse';
import { ApiError } from '../errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The JSON text the body was parsed from, for checks that need what JSON.parse dropped. */
    jsonText: string;
  }
}

/*
 * Strict UTF-8: a lenient decoder turns every invalid byte into U+FFFD, so two different ids would arrive
 * as one. A leading byte order mark is stripped, as RFC 8259 allows a parser to do.
 */
const utf8 = new TextDecoder('utf-8', { fatal: true });

const CHARSET = /;\s*charset\s*=\s*(?:"([^"]*)"|([^;\s]*))/i;

/** The body as text, or the ApiError saying why it cannot be read as UTF-8 JSON. */
function decode(body: Buffer, contentType: string | undefined): string | ApiError {
  const match = contentType ? CHARSET.exec(contentType) : null;
  const charset = match ? (match[1] ?? match[2] ?? '') : 'utf-8';
  if (!/^utf-?8$/i.test(charset)) {
    return new ApiError('UNSUPPORTED_MEDIA_TYPE', `charset ${JSON.stringify(charset)} is not supported: send JSON as UTF-8`);
  }
  try {
    return utf8.decode(body);
  } catch {
    return new ApiError('INVALID_ENCODING', `the body is not valid UTF-8: ${invalidUtf8(body)}`);
  }
}

/** Where the first ill-formed UTF-8 sequence starts (Unicode table 3-7) and which byte breaks it. */
export function invalidUtf8(bytes: Uint8Array): string {
  const hex = (b: number) => `0x${b.toString(16).toUpperCase().padStart(2, '0')}`;
  for (let i = 0; i < bytes.length; ) {
    const lead = bytes[i]!;
    if (lead < 0x80) {
      i++;
      continue;
    }
    // The continuation bytes a lead byte needs, and the range of the first one (overlongs, surrogates
    // and code points above U+10FFFF are refused by narrowing it).
    const [count, low, high] =
      lead >= 0xc2 && lead <= 0xdf ? [1, 0x80, 0xbf]
      : lead === 0xe0 ? [2, 0xa0, 0xbf]
      : lead === 0xed ? [2, 0x80, 0x9f]
      : lead >= 0xe1 && lead <= 0xef ? [2, 0x80, 0xbf]
      : lead === 0xf0 ? [3, 0x90, 0xbf]
      : lead === 0xf4 ? [3, 0x80, 0x8f]
      : lead >= 0xf1 && lead <= 0xf3 ? [3, 0x80, 0xbf]
      : [0, 0, 0];
    if (count === 0) return `byte ${hex(lead)} at offset ${i} cannot start a character`;
    for (let k = 1; k <= count; k++) {
      const at = i + k;
      if (at >= bytes.length) return `the character starting at offset ${i} is cut off by the end of the body`;
      const b = bytes[at]!;
      if (b < (k === 1 ? low : 0x80) || b > (k === 1 ? high : 0xbf)) {
        return `byte ${hex(b)} at offset ${at} does not continue the character starting at offset ${i}`;
      }
    }
    i += count + 1;
  }
  return 'no ill-formed sequence found';
}

/**
 * Fastify's own JSON parser answers every failure with the same "Body is not valid JSON"; this one says
 * what is wrong (a charset other than UTF-8, bytes that are not UTF-8, where the syntax breaks, or that
 * a __proto__ / constructor.prototype key was refused — such keys could pollute prototypes downstream
 * and are never accepted).
 */
export function registerJsonBodyParser(app: FastifyInstance): void {
  app.decorateRequest('jsonText', '');
  // JSON only: a text/plain body would otherwise reach validation as a string instead of getting a 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const text = decode(body as Buffer, request.headers['content-type']);
    if (text instanceof ApiError) return done(text, undefined);
    try {
      const value: unknown = secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
      request.jsonText = text;
      done(null, value);
    } catch (error) {
      done(new ApiError('INVALID_JSON', `invalid JSON body: ${(error as Error).message}`), undefined);
    }
  });
}
