import { setTimeout as sleep } from 'node:timers/promises';
import type { PublishedEvent } from '../event.js';
import { isRfc3339DateTime } from '../event-rules.js';
import { retryDelayMs } from './backoff.js';
import { AggregatorError } from './errors.js';
import { acceptEncoding, asTransient, authHeader, baseUrl, rangeTime, refusal, Transient, type Connection, type ReadEncoding } from './request.js';
import { SseParser } from './sse-parser.js';

/** An event as the aggregator stored it: `seq` is its commit order, `received_at` when it was accepted. */
export interface StoredEvent extends PublishedEvent {
  seq: number;
  received_at: string;
}

export interface SubscribeOptions extends Connection, ReadEncoding {
  /** Only these topics (none: all). */
  topics?: string[] | undefined;
  /**
   * Where to start: `earliest`, `latest` (only new events, the default), after a seq (a number, or its
   * decimal string), or from a time (a Date, or an RFC 3339 string).
   */
  from?: string | number | Date | undefined;
  /** Start after this durable consumer's committed position instead (over its topics). */
  consumer?: string | undefined;
  /**
   * Stop before the first event received after this time (a Date, or an RFC 3339 string): the iteration
   * ends once the server says the range is done (`event: end`), as replaying "yesterday 10:00–11:00" wants.
   */
  until?: string | Date | undefined;
  /** Ends the iteration. */
  signal?: AbortSignal | undefined;
  /** A connection ended or failed; the stream resumes after `delayMs`. */
  onReconnect?: (reason: string, delayMs: number) => void;
}

/** An event (`data` is its JSON text exactly as the server sent it), or a gap: retention purged what lay between. */
export type StreamMessage =
  | { type: 'event'; seq: number; event: StoredEvent; data: string }
  | { type: 'gap'; seq: number; after: number; resumedAfter: number };

/** The query that starts a stream. Throws on a `from` or `until` it does not understand. */
export function startQuery({ topics = [], from = 'latest', consumer, until }: Pick<SubscribeOptions, 'topics' | 'from' | 'consumer' | 'until'>): URLSearchParams {
  const query = new URLSearchParams();
  for (const topic of topics) query.append('topic', topic);
  if (consumer !== undefined) query.set('consumer', consumer);
  else if (from instanceof Date) query.set('since', from.toISOString());
  else if (typeof from === 'number' || /^\d+$/.test(from)) query.set('after', String(from));
  else if (from === 'earliest') query.set('after', '0');
  else if (isRfc3339DateTime(from)) query.set('since', from);
  else if (from !== 'latest') throw new Error(`from must be earliest, latest, a seq or an RFC 3339 time, got "${from}"`);
  if (until !== undefined) query.set('until', rangeTime('until', until));
  return query;
}

/**
 * `tail -f` for the aggregator: iterates /events/stream and, on any disconnect (network, server restart,
 * 503), reconnects with exponential backoff and full jitter, resuming after the last message it yielded
 * (Last-Event-ID), so no event is skipped or repeated across reconnects. Ends when `signal` aborts, the
 * loop breaks or, with `until`, the range is done; throws an AggregatorError on a refusal that waiting will not fix (a 4xx but 429).
 */
export async function* subscribe(options: SubscribeOptions): AsyncGenerator<StreamMessage, void, undefined> {
  const url = `${baseUrl(options.url)}/events/stream?${startQuery(options)}`;
  // Ours, so that breaking out of the loop also ends the connection.
  const stop = new AbortController();
  const abort = () => stop.abort();
  options.signal?.addEventListener('abort', abort);
  if (options.signal?.aborted) stop.abort();
  let lastEventId: string | undefined;
  try {
    for (let attempt = 0; !stop.signal.aborted; attempt++) {
      const parser = new SseParser();
      let failure: Transient;
      try {
        const res = await fetch(url, {
          headers: {
            accept: 'text/event-stream',
            ...acceptEncoding(options),
            ...authHeader(options.token),
            ...(lastEventId !== undefined ? { 'last-event-id': lastEventId } : {}),
          },
          signal: stop.signal,
        });
        if (!res.ok) {
          const refused = await refusal(res);
          if (refused instanceof AggregatorError) throw refused;
          failure = refused;
        } else {
          const decoder = new TextDecoder();
          for await (const chunk of res.body! as AsyncIterable<Uint8Array>) {
            for (const message of parser.feed(decoder.decode(chunk, { stream: true }))) {
              // A gap's id is where the stream resumed: a reconnect from there is not told of the same purge again.
              if (message.event === 'event' || message.event === 'gap') lastEventId = message.id;
              if (message.event === 'event') {
                attempt = 0; // it delivered: the next disconnect starts the backoff afresh
                yield { type: 'event', seq: Number(message.id), event: JSON.parse(message.data) as StoredEvent, data: message.data };
              } else if (message.event === 'gap') {
                const gap = JSON.parse(message.data) as { after: number; resumed_after: number };
                yield { type: 'gap', seq: Number(message.id), after: gap.after, resumedAfter: gap.resumed_after };
              } else if (message.event === 'end') {
                return;
              }
            }
          }
          failure = new Transient('the server ended the stream');
        }
      } catch (error) {
        if (stop.signal.aborted) return;
        const transient = asTransient(error);
        if (!transient) throw error;
        failure = transient;
      }
      const delay = Math.max(retryDelayMs(attempt, failure.retryAfterSeconds), parser.retryMs ?? 0);
      options.onReconnect?.(failure.message, delay);
      await sleep(delay, undefined, { signal: stop.signal }).catch(() => undefined);
    }
  } finally {
    options.signal?.removeEventListener('abort', abort);
    stop.abort();
  }
}
