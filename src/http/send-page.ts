import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';

const CHUNK_BYTES = 256 * 1024;

/**
 * Sends a page (JSON bytes) in chunks, written only as fast as the client reads them, so a reader costs
 * at most its page in memory. Each chunk a client takes counts as progress; one that takes nothing for
 * `stallTimeoutMs` is disconnected and its page freed.
 */
export function sendPage(reply: FastifyReply, page: Uint8Array, stallTimeoutMs: number): FastifyReply {
  reply.raw.setTimeout(stallTimeoutMs, () => reply.raw.destroy());
  return reply
    .type('application/json; charset=utf-8')
    .header('content-length', page.byteLength)
    .send(Readable.from(chunks(page), { objectMode: false }));
}

function* chunks(page: Uint8Array): Generator<Uint8Array> {
  for (let start = 0; start < page.byteLength; start += CHUNK_BYTES) yield page.subarray(start, start + CHUNK_BYTES);
}
