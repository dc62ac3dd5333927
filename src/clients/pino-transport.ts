import build from 'pino-abstract-transport';
import { v7 as uuidv7 } from 'uuid';
import type { PublishedEvent } from '../event.js';
import { isRfc3339DateTime } from '../event-rules.js';
import { Publisher, type PublisherOptions } from './publisher.js';

export interface PinoTransportOptions extends Omit<PublisherOptions, 'onError'> {
  /** The topic of every line (default `logs`)… */
  topic?: string;
  /** …unless the line has this field as a non-empty string: then that is its topic. */
  topicKey?: string;
  /** The event's `source` (default: the line's `name`, else its `hostname`, else `pino`). */
  source?: string;
}

const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);

/** pino writes `time` as epoch ms by default, or as an ISO string with `pino.stdTimeFunctions.isoTime`. */
function timestampOf(time: unknown): string {
  if (typeof time === 'number' && Number.isFinite(time)) return new Date(time).toISOString();
  if (typeof time === 'string' && isRfc3339DateTime(time)) return time;
  return new Date().toISOString();
}

/**
 * One log line as one event, the whole line its payload. The event_id is a UUID v7 drawn when the line is
 * read: the line is read once and its event keeps that id through every retry of its batch, so a retry is
 * a duplicate the aggregator drops. A digest of the line would instead merge two identical lines logged in
 * the same millisecond (a loop logging the same message), which are two events. v7 is time-ordered, which
 * the dedup index absorbs best.
 */
export function lineToEvent(line: Record<string, unknown>, options: Pick<PinoTransportOptions, 'topic' | 'topicKey' | 'source'>): PublishedEvent {
  return {
    topic: (options.topicKey === undefined ? undefined : text(line[options.topicKey])) ?? options.topic ?? 'logs',
    event_id: uuidv7(),
    timestamp: timestampOf(line.time),
    source: options.source ?? text(line.name) ?? text(line.hostname) ?? 'pino',
    payload: line,
  };
}

/**
 * The pino transport (`pino.transport({ target: 'pubsub-aggregator/pino', options })`), run by pino on its
 * worker thread: lines go through a Publisher. On a clean exit pino ends the stream and waits (up to 10 s)
 * for this worker to close, and closing flushes the publisher, so every line logged is acknowledged first;
 * what is still unacknowledged after those 10 s (the server down all along) is lost with the process.
 */
export default function pinoTransport(options: PinoTransportOptions) {
  const publisher = new Publisher({
    // pino gives the worker 10 s at exit: a batch must not sleep through it after a server came back.
    maxRetryDelayMs: 1_000,
    ...options,
    onError: (error) => process.stderr.write(`pubsub-aggregator/pino: ${error.message}\n`),
  });
  let reading: Promise<void> = Promise.resolve();
  return build((lines) => {
    reading = (async () => {
      for await (const line of lines) await publisher.publish(lineToEvent(line as Record<string, unknown>, options));
    })();
    return reading;
  }, {
    // Failures were reported as they happened (onError); closing must not lose the lines still buffered.
    close: async () => {
      await reading.catch(() => undefined);
      await publisher.close().catch(() => undefined);
    },
  });
}
