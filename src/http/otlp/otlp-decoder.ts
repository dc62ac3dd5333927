import { Worker } from 'node:worker_threads';
import type { Logger } from '../../logger.js';
import { ApiError } from '../errors.js';
import type { DecodeRequest, DecodeResult, DecoderSettings, OtlpEncoding } from './decode-export.js';
import type { OtlpEvents } from './log-events.js';

const DECODER_THREAD_ENTRY = new URL('./decoder-thread.js', import.meta.url);

/** Bodies waiting for the decoder at most; past that an export gets 503 (the exporter retries). */
const MAX_WAITING = 64;
/** The decoder's heap: far above what an 8 MiB body needs, and a bound on what a hostile one can take. */
const DECODER_HEAP_MB = 1024;

interface Waiting {
  resolve(events: OtlpEvents): void;
  reject(error: Error): void;
}

/**
 * The HTTP thread's end of the OTLP decoder thread (decoder-thread.ts): sends it each body and
 * settles the request with its events, or with the ApiError it refused the body with. A decoder that
 * dies (its heap exhausted) fails the body it was decoding with 400 and the ones behind it with 503,
 * and is started again for the next body.
 */
export class OtlpDecoder {
  private worker: Worker | undefined;
  private closing = false;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;

  constructor(private readonly settings: DecoderSettings, private readonly log: Logger) {}

  decode(encoding: OtlpEncoding, body: Uint8Array, receivedAt: string): Promise<OtlpEvents> {
    if (this.closing) return Promise.reject(new ApiError('SHUTTING_DOWN', 'the aggregator is shutting down'));
    if (this.waiting.size >= MAX_WAITING) {
      return Promise.reject(new ApiError('DECODER_BUSY', 'the OTLP decoder has too many bodies waiting; retry later', { retryAfterSeconds: 1 }));
    }
    const request: DecodeRequest = { id: this.nextId++, encoding, body, receivedAt };
    return new Promise((resolve, reject) => {
      this.waiting.set(request.id, { resolve, reject });
      this.started().postMessage(request);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(DECODER_THREAD_ENTRY, {
      workerData: this.settings, name: 'otlp-decoder', resourceLimits: { maxOldGenerationSizeMb: DECODER_HEAP_MB },
    });
    let outOfMemory = false;
    worker.on('message', (result: DecodeResult) => this.settle(result));
    worker.on('error', (error: Error & { code?: string }) => {
      outOfMemory = error.code === 'ERR_WORKER_OUT_OF_MEMORY';
      this.log.error({ err: error }, 'OTLP decoder failed');
    });
    worker.on('exit', () => {
      if (this.worker === worker) this.worker = undefined;
      this.failWaiting(outOfMemory);
    });
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private settle(result: DecodeResult): void {
    const waiting = this.waiting.get(result.id);
    if (!waiting) return;
    this.waiting.delete(result.id);
    if (result.ok) return waiting.resolve(result);
    if (result.code !== 'INTERNAL') return waiting.reject(new ApiError(result.code, result.message));
    this.log.error({ detail: result.message }, 'OTLP decoder failed on a body');
    waiting.reject(new ApiError('INTERNAL', 'internal error; the server log has the details'));
  }

  /**
   * The worker is gone: stopped by close(), or dead. When its heap ran out, the first body was being
   * decoded: it is the culprit (400); the others may be retried (503), as may every body when it died of
   * anything else (logged).
   */
  private failWaiting(outOfMemory: boolean): void {
    let culprit = outOfMemory;
    for (const [id, waiting] of this.waiting) {
      this.waiting.delete(id);
      waiting.reject(this.closing ? new ApiError('SHUTTING_DOWN', 'the aggregator is shutting down')
        : culprit ? new ApiError('INVALID_BODY', 'decoding the body took more memory than the OTLP decoder has')
        : new ApiError('DECODER_BUSY', 'the OTLP decoder restarted; retry', { retryAfterSeconds: 1 }));
      culprit = false;
    }
  }
}
