import type { ServerResponse } from 'node:http';
import type { Transform } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { EventReader } from '../../store/store.js';
import type { SubscriberHub } from '../../stream/hub.js';
import type { StreamSink, StreamStart } from '../../stream/subscription.js';
import { ApiError } from '../errors.js';
import { checkConsumerUse, checkReadable, readScope } from '../access/scoped-access.js';
import type { ConsumerRecord } from '../../store/consumers.js';
import { checkName, unknown } from './consumers.js';
import { acceptsGzip, gzipInto } from '../compression.js';
import { StreamQuerySchema, StreamResponseSchema, type StreamQuery } from '../schemas/stream.js';
import type { RangeEnds } from '../../stream/time-range.js';
import { readRange } from '../read-range.js';

/** What a client's EventSource waits before reconnecting. */
const RETRY_MS = 1_000;
export interface StreamRouteOptions {
  reader: EventReader;
  hub: SubscriberHub;
  ranges: RangeEnds;
  maxSubscribers: number;
}

/**
 * Where a stream starts, from the request: the one place that turns `Last-Event-ID` (which wins),
 * `consumer`, `after`, `since` and `topic` into a cursor and topics.
 */
async function streamStart(
  query: StreamQuery, since: string | undefined, lastEventId: string | string[] | undefined, reader: EventReader,
  mayUse: (consumer: ConsumerRecord) => void,
): Promise<StreamStart> {
  const asked = query.topic && [...new Set(query.topic)];
  const consumer = query.consumer === undefined ? undefined : await reader.consumer(checkName(query.consumer));
  if (query.consumer !== undefined && consumer === undefined) throw unknown(query.consumer);
  if (consumer) mayUse(consumer);
  const topics = consumer ? narrowed(consumer.topics, asked) : asked;
  if (lastEventId !== undefined) return { ...resumedFrom(lastEventId), topics };
  if (consumer) return { after: consumer.position, topics };
  if (query.after !== undefined) return { after: query.after, topics };
  return { after: await reader.startAfter(since), topics };
}

/** A consumer's topics (null: every topic), narrowed to the ones the request names too. */
function narrowed(own: string[] | null, asked: string[] | undefined): string[] | undefined {
  if (asked === undefined) return own ?? undefined;
  const topics = own === null ? asked : asked.filter((topic) => own.includes(topic));
  if (topics.length === 0) throw new ApiError('INVALID_QUERY', 'none of the topics asked for is one of the consumer\'s');
  return topics;
}

/** Last-Event-ID: an event's id (its seq) or a gap's (`<seq>` or `<seq>:<sum of the purge horizons it told of>`). */
function resumedFrom(value: string | string[]): Pick<StreamStart, 'after' | 'toldSum'> {
  const [, seq, sum] = (typeof value === 'string' && /^(\d{1,16})(?::(\d{1,32}))?$/.exec(value)) || [];
  const after = Number(seq);
  if (seq === undefined || !Number.isSafeInteger(after)) {
    throw new ApiError('INVALID_QUERY', 'Last-Event-ID must be an id this stream sent: a seq (an integer from 0 to 2^53-1), or a gap\'s');
  }
  return { after, toldSum: sum === undefined ? undefined : BigInt(sum) };
}

/** GET /events/stream: Server-Sent Events, resumable by seq (README, "Subscribing"). */
export const streamRoutes: FastifyPluginAsyncTypebox<StreamRouteOptions> = async (app, { reader, hub, ranges, maxSubscribers }) => {
  // Streams never end by themselves: the server would wait for them forever when it stops.
  app.addHook('preClose', async () => hub.close());
  let starting = 0;
  app.get(
    '/events/stream',
    {
      schema: {
        summary: 'A live stream of stored events (Server-Sent Events), resumable by seq',
        description: 'Each event: `id: <seq>`, `event: event`, `data: <the /events item>`. Catch-up from the store, then live; '
          + 'reconnect with Last-Event-ID (or after=) to continue without gap or repeat. `: keep-alive` comments while idle '
          + '(SSE_KEEPALIVE_MS). Events retention purged after the cursor are announced by `event: gap` with '
          + '`data: {"after", "resumed_after"}` before the stream goes on after resumed_after. A gap\'s id is resumed_after, '
          + 'or `<resumed_after>:<n>` when purges beyond it were told (n tells a reconnect which): send ids back as received. '
          + 'With until=, the stream stops before the first event received after it and ends with `event: end` '
          + '(`data: {"until", "last_seq"}`, no id) before it closes: a client closes its EventSource on it rather than reconnect.',
        querystring: StreamQuerySchema,
        produces: ['text/event-stream'],
        response: { 200: StreamResponseSchema },
      },
    },
    async (request, reply) => {
      if (hub.size + starting >= maxSubscribers) {
        throw new ApiError('SUBSCRIBER_LIMIT', `this server has ${maxSubscribers} open streams (MAX_SUBSCRIBERS)`, { retryAfterSeconds: 5 });
      }
      if (request.query.topic) checkReadable(request, request.query.topic);
      const { since, until } = readRange(request.query);
      // Listened for before the first await: a client that leaves while its start is read must not leave a stream behind.
      const gone = new Promise<void>((resolve) => reply.raw.once('close', resolve));
      starting++;
      let start: StreamStart;
      try {
        start = await streamStart(
          request.query, since, request.headers['last-event-id'], reader, (consumer) => checkConsumerUse(request, consumer));
      } finally {
        starting--;
      }
      const res = reply.hijack().raw;
      const gzip = acceptsGzip(request);
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        'x-accel-buffering': 'no',
        vary: 'Accept-Encoding',
        ...(gzip ? { 'content-encoding': 'gzip' } : {}),
      });
      const sink = responseSink(res, gzip ? gzipInto(res) : undefined);
      sink.write(Buffer.from(`retry: ${RETRY_MS}\n\n`));
      const range = until === undefined ? undefined : { until: request.query.until!, end: () => ranges.endOf(until) };
      // Over every topic, an access token's stream carries only the topics it may read, gaps included.
      hub.subscribe(sink, { ...start, readable: readScope(request), range }, (closed) => void gone.then(closed));
    },
  );
};

/**
 * The stream's socket, written through `encoder` (gzip) when given. What the encoder holds (input not yet
 * compressed, output not yet taken by the socket) counts as buffered, so a stalled client holds its bounded
 * share with or without compression; the encoder takes input only while the socket takes its output.
 */
function responseSink(res: ServerResponse, encoder?: Transform): StreamSink {
  const input = encoder ?? res;
  const held = encoder ? () => encoder.writableLength + encoder.readableLength : () => 0;
  return {
    write: (bytes) => void input.write(bytes),
    get bufferedBytes() {
      return res.writableLength + held();
    },
    get needsDrain() {
      return input.writableNeedDrain || res.writableNeedDrain;
    },
    drained: (timeoutMs) => new Promise((resolve) => {
      // The encoder drains only after the socket did and it compressed what it held.
      const full = input.writableNeedDrain ? input : res;
      const done = (drained: boolean) => {
        clearTimeout(timer);
        full.off('drain', onDrain);
        res.off('close', onClose);
        resolve(drained);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      full.on('drain', onDrain);
      res.on('close', onClose);
    }),
    end: () => input.end(),
    destroy: () => res.destroy(),
  };
}
