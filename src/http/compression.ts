import type { ServerResponse } from 'node:http';
import { pipeline, type Readable, type Transform } from 'node:stream';
import { constants, createGzip, type ZlibOptions } from 'node:zlib';
import { negotiate } from '@fastify/accept-negotiator';
import type { FastifyRequest } from 'fastify';

/**
 * Compressed reads: `Accept-Encoding: gzip` on /events, /events/stream and durable consumer pages.
 *
 * Level 1 with an 8 KiB window (docs/performance.md, "Compressed reads"): log events compress about 6 × so,
 * against 7 × at zlib's defaults (level 6, 32 KiB window), for less CPU and a quarter of the memory: each
 * open gzip stream holds its deflate state (about 64 KiB here, 256 KiB at the defaults) for as long as it
 * is open, stalled or not.
 */
const GZIP: ZlibOptions = { level: 1, windowBits: 13, memLevel: 6 };

/** A body smaller than this goes out as it is: gzip would save a few hundred bytes for its CPU and latency. */
export const MIN_GZIP_BYTES = 1024;

/** Whether the request's Accept-Encoding prefers gzip to no encoding (q-values, `*` and `identity` as RFC 9110 says). */
export function acceptsGzip(request: FastifyRequest): boolean {
  const header = request.headers['accept-encoding'];
  return typeof header === 'string' && negotiate(header.toLowerCase(), ['gzip', 'identity']) === 'gzip';
}

/** `body` gzip-compressed as it is read; the compressor is freed when either side ends or fails. */
export function gzipped(body: Readable): Readable {
  return pipeline(body, createGzip(GZIP), ignore);
}

/**
 * A gzip stream into `res`, each write compressed and flushed at once (Z_SYNC_FLUSH), so that a stream's
 * frames and keep-alives reach the client as soon as written, not when a compression block fills. Written
 * only while `res` takes its output (pipe): a client that stops reading stops the compressor, whose queued
 * input then shows in its writableLength.
 */
export function gzipInto(res: ServerResponse): Transform {
  const gzip = createGzip({ ...GZIP, flush: constants.Z_SYNC_FLUSH });
  // A client gone mid-stream is no error to report; pipeline frees the compressor either way.
  pipeline(gzip, res, ignore);
  return gzip;
}

const ignore = () => undefined;
