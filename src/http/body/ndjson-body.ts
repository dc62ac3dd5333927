import type { Readable } from 'node:stream';
import { TextDecoder } from 'node:util';
import type { FastifyInstance } from 'fastify';
import secureJson from 'secure-json-parse';
import type { IncomingEvent } from '../../event.js';
import { ApiError, type EventProblem } from '../errors.js';
import { acceptAll, lossesInEvent, refuseTooMany, type PublishLimits } from './publish-body.js';

/** An NDJSON publish body: the value of each non-blank line, with its 1-based line number and its text. */
export class NdjsonBody {
  readonly items: unknown[] = [];
  readonly lines: number[] = [];
  readonly texts: string[] = [];
}

/** Problems reported per request at most, like a JSON body's. */
const MAX_BAD_LINES = 100;

/*
 * Strict UTF-8, as for JSON bodies (src/http/json-body.ts): a lenient decoder would merge distinct ids.
 * `stream: true` carries a character split across two chunks over to the next one.
 */
const strictUtf8 = () => new TextDecoder('utf-8', { fatal: true });

/**
 * `Content-Type: application/x-ndjson` on POST /publish: one event per line, split and parsed as the body
 * arrives (with the same secure JSON parsing as a JSON body), never past BODY_LIMIT nor past
 * MAX_EVENTS_PER_REQUEST lines. A line that is not JSON refuses the request with its line number.
 */
export function registerNdjsonBodyParser(app: FastifyInstance, limits: PublishLimits & { bodyLimit: number }): void {
  app.addContentTypeParser('application/x-ndjson', async (request: { routeOptions: { url?: string } }, payload: Readable) => {
    if (request.routeOptions.url !== '/publish') throw new ApiError('UNSUPPORTED_MEDIA_TYPE', 'NDJSON is accepted on POST /publish only');
    return readNdjson(payload, limits);
  });
}

async function readNdjson(payload: Readable, limits: PublishLimits & { bodyLimit: number }): Promise<NdjsonBody> {
  const body = new NdjsonBody();
  const bad: EventProblem[] = [];
  const decoder = strictUtf8();
  let lineNumber = 0;
  let received = 0;
  let pending = '';

  const take = (text: string) => {
    lineNumber++;
    if (text.trim() === '') return;
    let item: unknown;
    try {
      item = secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
    } catch (error) {
      const reason = `invalid JSON: ${(error as Error).message}`;
      if (bad.length < MAX_BAD_LINES) bad.push({ index: body.items.length, line: lineNumber, field: '(line)', reason });
    }
    body.items.push(item);
    body.lines.push(lineNumber);
    body.texts.push(text);
    if (body.items.length > limits.maxEventsPerRequest) throw refuseTooMany(body.items.length, limits);
  };

  for await (const chunk of payload as AsyncIterable<Buffer>) {
    received += chunk.length;
    if (received > limits.bodyLimit) throw new ApiError('BODY_TOO_LARGE', `the body is larger than BODY_LIMIT (${limits.bodyLimit} bytes)`);
    pending += decode(decoder, chunk, received);
    let start = 0;
    for (let end = pending.indexOf('\n'); end >= 0; end = pending.indexOf('\n', start)) {
      take(pending.slice(start, end));
      start = end + 1;
    }
    pending = pending.slice(start);
  }
  pending += decode(decoder, undefined, received);
  if (pending !== '') take(pending);
  if (bad.length > 0) {
    throw new ApiError('INVALID_JSON', `${bad.length} line(s) are not JSON; nothing was stored`, { errors: bad });
  }
  return body;
}

function decode(decoder: TextDecoder, chunk: Buffer | undefined, receivedBytes: number): string {
  try {
    return chunk ? decoder.decode(chunk, { stream: true }) : decoder.decode();
  } catch {
    throw new ApiError('INVALID_ENCODING', `the body is not valid UTF-8 (within its first ${receivedBytes} bytes)`);
  }
}

/** The events of an NDJSON body, all-or-nothing like an array; each problem names its line. Throws ApiError when refused. */
export function parseNdjsonEvents(body: NdjsonBody, limits: PublishLimits, receivedAt: string): IncomingEvent[] {
  try {
    return acceptAll(body.items, limits, receivedAt, () => {
      const losses: EventProblem[] = [];
      for (let index = 0; index < body.items.length && losses.length < MAX_BAD_LINES; index++) {
        losses.push(...lossesInEvent(index, body.items[index], body.texts[index]!));
      }
      return losses.slice(0, MAX_BAD_LINES);
    });
  } catch (error) {
    for (const problem of (error as ApiError).details?.errors ?? []) problem.line = body.lines[problem.index];
    throw error;
  }
}
