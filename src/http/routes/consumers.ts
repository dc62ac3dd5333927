import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { FastifyRequest } from 'fastify';
import type { Pipeline } from '../../pipeline/pipeline.js';
import {
  normalizeTopics, type ConsumerCommand, type ConsumerRefusal,
} from '../../store/consumers.js';
import type { PurgeCheck } from '../../stream/purge-check.js';
import type { EventReader } from '../../store/store.js';
import type { CommitSignal } from '../../stream/commit-signal.js';
import { ConsumerLongPolls, type PolledPage } from '../../stream/long-polls.js';
import type { RangeEnds } from '../../stream/time-range.js';
import { readRange } from '../read-range.js';
import type { ConsumerLagCache } from '../consumer-lag.js';
import { ApiError, type ErrorCode } from '../errors.js';
import { checkConsumerUse, checkReadable, consumerActor, mayUse } from '../access/scoped-access.js';
import {
  CommitQuerySchema, CommitSchema, ConsumerListSchema, ConsumerPageSchema, ConsumerSchema, consumerJson, DefinitionSchema, ParamsSchema,
  PollQuerySchema,
} from '../schemas/consumers.js';
import { PURGED_THROUGH_HEADER, RANGE_END_HEADER } from '../schemas/events.js';
import { sendPage } from '../send-page.js';

export interface ConsumerRouteOptions {
  pipeline: Pipeline;
  reader: EventReader;
  commits: CommitSignal;
  lags: ConsumerLagCache;
  purges: PurgeCheck;
  ranges: RangeEnds;
  maxConsumers: number;
  stallTimeoutMs: number;
}

/** "." and ".." are path segments to every client that normalises URLs: a consumer of that name would be unreachable. */
const NAME = /^(?!\.\.?$)[A-Za-z0-9._-]{1,128}$/;
/** Each refusal of the store is an error code of the API (checked here at compile time). */
const REFUSAL_CODES = {
  UNKNOWN_CONSUMER: 'UNKNOWN_CONSUMER', CONSUMER_CONFLICT: 'CONSUMER_CONFLICT', CONSUMER_LIMIT: 'CONSUMER_LIMIT',
  COMMIT_BACKWARDS: 'COMMIT_BACKWARDS', COMMIT_BEYOND_END: 'COMMIT_BEYOND_END', CONSUMER_FORBIDDEN: 'CONSUMER_FORBIDDEN',
} as const satisfies Record<ConsumerRefusal, ErrorCode>;

/** The name, if it is a valid consumer name; else 400 INVALID_CONSUMER. */
export function checkName(name: string): string {
  if (!NAME.test(name)) throw new ApiError('INVALID_CONSUMER', 'a consumer name is 1–128 characters of A-Z, a-z, 0-9, ".", "_" and "-", other than "." and ".."');
  return name;
}

/** A query (or body) that broke its schema: reported by the handler, after the name, so a bad name is named first. */
function refuseInvalid(request: FastifyRequest): void {
  const error = request.validationError;
  if (!error) return;
  throw new ApiError(error.validationContext === 'body' ? 'INVALID_BODY' : 'INVALID_QUERY', error.message);
}

/**
 * Checks a body against its schema as it was sent, the name first (so a bad name is named first whatever the
 * body). Fastify's validator coerces ("5" → 5, true → 1, null → 0, [7] → 7, "a" → ["a"]) and would take what
 * the schema refuses; the compiled TypeBox check coerces nothing, and refuses fields the schema does not
 * name (additionalProperties: false), which silently accepted would hide client bugs.
 */
function strictBody(schema: TSchema) {
  const body = TypeCompiler.Compile(schema);
  return async (request: FastifyRequest<{ Params: Static<typeof ParamsSchema> }>): Promise<void> => {
    checkName(request.params.name);
    if (body.Check(request.body)) return;
    const error = body.Errors(request.body).First()!;
    throw new ApiError('INVALID_BODY', `body${error.path}: ${error.message}`);
  };
}

/** 404 UNKNOWN_CONSUMER, for every route that names a consumer (the stream's consumer= too). */
export const unknown = (name: string) => new ApiError('UNKNOWN_CONSUMER', `no consumer named ${name}`);

/** `{"events": [...], "next": n}` (and, for a time range, `"end"`) around the page's bytes, which go out as the store built them. */
function pageJson({ events, next, final }: PolledPage, ranged: boolean): Uint8Array {
  return Buffer.concat([Buffer.from('{"events":'), events, Buffer.from(`,"next":${next}${ranged ? `,"end":${final === true}` : ''}}`)]);
}

/**
 * Durable consumers: server-side cursors with their lag (README, "Durable consumers"). Writes go to the
 * writer worker, the store's one writer; reads to the reader. Access is 'read' throughout: a consumer
 * is a reader's own cursor, and managing one reveals nothing a reader could not read already.
 */
export const consumerRoutes: FastifyPluginAsyncTypebox<ConsumerRouteOptions> = async (app, options) => {
  const { pipeline, reader, commits, lags, purges, ranges, maxConsumers, stallTimeoutMs } = options;
  // A stopping server answers its long-polls at once (empty) instead of letting them hold the stop for wait_ms.
  const closing = new AbortController();
  app.addHook('preClose', async () => closing.abort());
  const longPolls = new ConsumerLongPolls(reader, commits);

  /** Runs a command; a refusal becomes its error answer. */
  async function apply(command: ConsumerCommand) {
    const outcome = await pipeline.consumerCommand(command);
    lags.invalidate();
    if (outcome.kind === 'refused') throw new ApiError(REFUSAL_CODES[outcome.refusal], outcome.message);
    return outcome;
  }

  app.put('/consumers/:name', {
    schema: {
      summary: 'Create a durable consumer (idempotent)', params: ParamsSchema, body: DefinitionSchema,
      response: { 200: ConsumerSchema, 201: ConsumerSchema },
    },
    attachValidation: true,
    preValidation: strictBody(DefinitionSchema),
  }, async (request, reply) => {
    const name = checkName(request.params.name);
    refuseInvalid(request);
    const { topics, start } = request.body;
    const definition = { topics: normalizeTopics(topics), start };
    checkReadable(request, definition.topics);
    const outcome = await apply({ kind: 'create', name, definition, maxConsumers, actor: consumerActor(request) });
    return reply.code(outcome.kind === 'created' ? 201 : 200).send(consumerJson(outcome.consumer));
  });

  app.get('/consumers', {
    schema: { summary: "Every durable consumer with its lag (a token's own; an admin's: all)", response: { 200: ConsumerListSchema } },
  }, async (request) =>
    (await reader.consumerStatus()).filter((consumer) => mayUse(request, consumer)).map(consumerJson));

  app.get('/consumers/:name', {
    schema: { summary: 'A durable consumer with its lag', params: ParamsSchema, response: { 200: ConsumerSchema } },
  }, async (request) => {
    const name = checkName(request.params.name);
    const [consumer] = await reader.consumerStatus(name);
    if (!consumer) throw unknown(name);
    checkConsumerUse(request, consumer);
    return consumerJson(consumer);
  });

  app.delete('/consumers/:name', { schema: { summary: 'Delete a durable consumer', params: ParamsSchema } }, async (request, reply) => {
    await apply({ kind: 'delete', name: checkName(request.params.name), actor: consumerActor(request) });
    return reply.code(204).send();
  });

  app.get('/consumers/:name/events', {
    schema: {
      summary: "The events after a consumer's committed position",
      description: '`next` is the position to commit to acknowledge them all. Until committed, the same events come again. '
        + `When retention purged events of the consumer's topics after its position, the page starts from the oldest retained `
        + `one and carries ${PURGED_THROUGH_HEADER} (as /events). A time range: since= skips the events received before it `
        + `(committing \`next\` acknowledges them too), until= ends the range; once its end is stored, pages carry ${RANGE_END_HEADER}, `
        + 'and `end` is true on the empty page that ends it (a long-poll answers it at once).',
      params: ParamsSchema, querystring: PollQuerySchema,
      // Documentation only: the body is JSON text built by the store, sent as it is.
      response: { 200: ConsumerPageSchema },
    },
  }, async (request, reply) => {
    const name = checkName(request.params.name);
    const owned = request.grant && await reader.consumer(name);
    if (owned) checkConsumerUse(request, owned);
    const { limit, wait_ms: waitMs } = request.query;
    const { since, until } = readRange(request.query);
    // The position the page starts from, read before it; a rewind committed during the poll is not told of.
    const from = (await purges.mayHavePurged()) ? await longPolls.read(waitMs, () => reader.consumer(name)) : undefined;
    const after = since === undefined ? undefined : await reader.startAfter(since);
    let rangeEnd: number | undefined;
    const read = async (): Promise<PolledPage | undefined> => {
      if (until === undefined) return reader.consumerPage(name, limit, { after });
      const { page, end } = await ranges.read(
        until, (before) => reader.consumerPage(name, limit, { after, before }), (polled) => (polled?.count ? polled.next : undefined));
      rangeEnd = end;
      return page && { ...page, final: end !== undefined && page.count === 0 };
    };
    const gone = new AbortController();
    reply.raw.once('close', () => gone.abort());
    const page = await longPolls.poll(name, limit, waitMs, AbortSignal.any([gone.signal, closing.signal]), read);
    if (!page) throw unknown(name);
    if (rangeEnd !== undefined) reply.header(RANGE_END_HEADER, rangeEnd - 1);
    const purged = from && await longPolls.read(waitMs, () => purges.behind(from.topics ?? undefined, from.position));
    if (purged) reply.header(PURGED_THROUGH_HEADER, purged.max);
    // Answered because the server stops: the client should not keep the connection for another request.
    if (closing.signal.aborted) reply.header('connection', 'close');
    return sendPage(reply, pageJson(page, until !== undefined), stallTimeoutMs);
  });

  app.post('/consumers/:name/commit', {
    schema: {
      summary: "Store a consumer's position durably", params: ParamsSchema, body: CommitSchema, querystring: CommitQuerySchema,
      response: { 200: ConsumerSchema },
    },
    attachValidation: true,
    preValidation: strictBody(CommitSchema),
  }, async (request) => {
    const name = checkName(request.params.name);
    refuseInvalid(request);
    const outcome = await apply({ kind: 'commit', name, seq: request.body.seq, rewind: request.query.rewind, actor: consumerActor(request) });
    return consumerJson(outcome.consumer);
  });
};
