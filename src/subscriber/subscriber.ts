import { setTimeout as sleep } from 'node:timers/promises';
import { isRfc3339DateTime } from '../event-rules.js';
import { parseRetryAfter, retryDelayMs } from '../publisher/backoff.js';
import { SseParser } from './sse-parser.js';

export interface SubscriberOptions {
  /** The aggregator's base URL. */
  url: string;
  /** Only these topics (none: all). */
  topics: string[];
  /** Where to start: `earliest`, `latest` (only new events), a seq, or an RFC 3339 time. */
  from: string;
  /** Start from this durable consumer's committed position instead. */
  consumer?: string | undefined;
  token?: string | undefined;
  /** Stops the subscriber (it resolves). */
  signal?: AbortSignal;
}

export interface SubscriberHandlers {
  /** An event, as the JSON text the server sent (one line), and its seq. */
  event(json: string, seq: string): void;
  /** The cursor was older than the oldest retained event: the stream resumed after `data.resumed_after`. */
  gap?(json: string): void;
  /** A connection ended or failed; the subscriber reconnects after `delayMs`. */
  reconnecting?(reason: string, delayMs: number): void;
}

/** The query that starts a stream, from --from / --consumer. Throws on a --from it does not understand. */
export function startQuery({ topics, from, consumer }: Pick<SubscriberOptions, 'topics' | 'from' | 'consumer'>): URLSearchParams {
  const query = new URLSearchParams();
  for (const topic of topics) query.append('topic', topic);
  if (consumer !== undefined) query.set('consumer', consumer);
  else if (from === 'earliest') query.set('after', '0');
  else if (/^\d+$/.test(from)) query.set('after', from);
  else if (isRfc3339DateTime(from)) query.set('since', from);
  else if (from !== 'latest') throw new Error(`--from must be earliest, latest, a seq or an RFC 3339 time, got "${from}"`);
  return query;
}

/** A refusal that waiting will not fix (4xx other than 429): the subscriber stops with it. */
export class SubscribeRefused extends Error {}

/**
 * `tail -f` for the aggregator: follows /events/stream, and on any disconnect (network, server restart,
 * 503) reconnects with exponential backoff and full jitter, resuming after the last event it delivered
 * (Last-Event-ID), so no event is skipped or repeated across reconnects. Resolves when `signal` aborts.
 */
export async function runSubscriber(options: SubscriberOptions, handlers: SubscriberHandlers): Promise<void> {
  const base = `${options.url.replace(/\/+$/, '')}/events/stream?${startQuery(options)}`;
  let lastEventId: string | undefined;
  for (let attempt = 0; !options.signal?.aborted; attempt++) {
    let retryAfter: number | undefined;
    let reason: string;
    const parser = new SseParser();
    try {
      const res = await fetch(base, {
        headers: {
          accept: 'text/event-stream',
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          ...(lastEventId !== undefined ? { 'last-event-id': lastEventId } : {}),
        },
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (!res.ok) {
        const body = await res.text();
        if (res.status !== 429 && res.status < 500) throw new SubscribeRefused(`HTTP ${res.status}: ${body}`);
        retryAfter = parseRetryAfter(res.headers.get('retry-after'));
        reason = `HTTP ${res.status}`;
      } else {
        const decoder = new TextDecoder();
        for await (const chunk of res.body! as AsyncIterable<Uint8Array>) {
          for (const message of parser.feed(decoder.decode(chunk, { stream: true }))) {
            if (message.event === 'event') {
              handlers.event(message.data, message.id!);
              // Only what was delivered counts: an id line whose message the connection cut is not resumed after.
              lastEventId = message.id;
              attempt = 0; // it delivered: the next disconnect starts the backoff afresh
            } else if (message.event === 'gap') {
              handlers.gap?.(message.data);
              // Its id is where the stream resumed: a reconnect from there is not told of the same purge again.
              lastEventId = message.id;
            }
          }
        }
        reason = 'the server ended the stream';
      }
    } catch (error) {
      if (error instanceof SubscribeRefused || options.signal?.aborted) {
        if (options.signal?.aborted) return;
        throw error;
      }
      reason = (error as Error).message;
    }
    const delay = Math.max(retryDelayMs(attempt, retryAfter), parser.retryMs ?? 0);
    handlers.reconnecting?.(reason, delay);
    await sleep(delay, undefined, options.signal ? { signal: options.signal } : {}).catch(() => undefined);
  }
}
