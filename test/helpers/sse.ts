import { request, type IncomingMessage } from 'node:http';
import { createGunzip } from 'node:zlib';
import { SseParser, type SseMessage } from '../../src/clients/sse-parser.js';
import { eventually } from './eventually.js';

/** A Server-Sent Events client over a real socket: parses frames, records ids, can stop reading. */
export interface SseStream {
  status: number;
  headers: IncomingMessage['headers'];
  /** The body of a non-200 answer, parsed. */
  error: any;
  events: SseMessage[];
  /** The seqs of every `event: event`, in arrival order. */
  ids: number[];
  comments: string[];
  retry: number | undefined;
  /** Bytes of the body as they came over the socket (compressed, under `Content-Encoding: gzip`). */
  wireBytes: number;
  /** Resolves when the server ended or cut the stream. */
  ended: Promise<void>;
  /** Stops taking bytes from the socket (the server's writes back up); `resume` takes them again. */
  pause(): void;
  resume(): void;
  close(): void;
  /** Waits until `count` events arrived. */
  waitFor(count: number, timeout?: number): Promise<void>;
}

/** Opens `GET <url><path>`; resolves once the answer's headers arrived. */
export function openStream(url: string, path: string, headers: Record<string, string> = {}): Promise<SseStream> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      const stream: SseStream = {
        status: res.statusCode!,
        headers: res.headers,
        error: undefined,
        events: [],
        ids: [],
        comments: [],
        retry: undefined,
        wireBytes: 0,
        ended: new Promise((done) => res.once('close', done)),
        pause: () => res.pause(),
        resume: () => res.resume(),
        close: () => req.destroy(),
        waitFor: (count, timeout = 10_000) => eventually(() => stream.events.length, {
          what: `${count} stream events (have ${stream.events.length})`, timeout, interval: 5, until: (n) => n >= count,
        }).then(() => undefined),
      };
      if (stream.status !== 200) {
        res.setEncoding('utf8');
        let text = '';
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          stream.error = JSON.parse(text);
          resolve(stream);
        });
        return;
      }
      const parser = new SseParser((comment) => stream.comments.push(comment));
      // Decoded by hand rather than piped, so that pause() stops taking bytes from the socket and nothing resumes it.
      const gunzip = res.headers['content-encoding'] === 'gzip' ? createGunzip() : undefined;
      const body = gunzip ?? res;
      if (gunzip) gunzip.setEncoding('utf8');
      else res.setEncoding('utf8');
      res.on('data', (chunk: Buffer | string) => {
        stream.wireBytes += Buffer.byteLength(chunk);
        gunzip?.write(chunk);
      });
      body.on('data', (chunk: string) => {
        for (const event of parser.feed(chunk)) {
          stream.events.push(event);
          if (event.event === 'event') stream.ids.push(Number(event.id));
        }
        stream.retry = parser.retryMs;
      });
      resolve(stream);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The seqs of `ids` that are not strictly increasing or appear twice: empty when the order is exact. */
export function orderProblems(ids: readonly number[]): string[] {
  return ids.flatMap((id, i) => (i > 0 && id <= ids[i - 1]! ? [`${id} after ${ids[i - 1]}`] : []));
}
