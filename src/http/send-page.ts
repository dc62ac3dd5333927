import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { acceptsGzip, gzipped, MIN_GZIP_BYTES } from './compression.js';

const CHUNK_BYTES = 256 * 1024;

/**
 * Sends a page (JSON bytes) in chunks, written only as fast as the client reads them, so a reader costs
 * at most its page in memory. Each chunk a client takes counts as progress; one that takes nothing for
 * `stallTimeoutMs` is disconnected and its page freed. Compressed (chunked, no Content-Length) when the
 * client asks for gzip; compression runs at the pace the client reads too.
 */
export function sendPage(reply: FastifyReply, page: Uint8Array, stallTimeoutMs: number): FastifyReply {
  reply.raw.setTimeout(stallTimeoutMs, () => reply.raw.destroy());
  reply.type('application/json; charset=utf-8').header('vary', 'Accept-Encoding');
  const body = Readable.from(chunks(page), { objectMode: false });
  if (page.byteLength < MIN_GZIP_BYTES || !acceptsGzip(reply.request)) return reply.header('content-length', page.byteLength).send(body);
  return reply.header('content-encoding', 'gzip').send(gzipped(body));
}

function* chunks(page: Uint8Array): Generator<Uint8Array> {
  for (let start = 0; start < page.byteLength; start += CHUNK_BYTES) yield page.subarray(start, start + CHUNK_BYTES);
}
