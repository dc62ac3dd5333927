import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { Topic } from '../../event.js';
import { readFilter } from '../access/scoped-access.js';
import { sendPage } from '../send-page.js';
import type { ReadRouteOptions } from './events.js';

export const TopicsQuerySchema = Type.Object(
  {
    after: Type.Optional(Type.String({ ...Topic, minLength: 0, description: 'Return topics whose name sorts after this (the last one seen); empty: from the first' })),
    limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
  },
  { additionalProperties: false },
);

const TopicCountSchema = Type.Object({
  topic: Type.String(),
  events: Type.Integer({ description: 'Stored (unique) events of the topic, store-wide' }),
});

/** GET /topics: every topic with its stored events, by name, paged by `after` (the last name seen). */
export const topicsRoutes: FastifyPluginAsyncTypebox<ReadRouteOptions> = async (app, { reader, stallTimeoutMs }) => {
  app.get(
    '/topics',
    {
      schema: {
        summary: 'Every topic with its stored event count, by name (an access token\'s: those it may read)',
        description: 'Page with after=<last topic seen> until an empty array. Names sort by the store\'s order.',
        querystring: TopicsQuerySchema,
        // Documentation only: the body is JSON text built by the store, sent as it is.
        response: { 200: Type.Array(TopicCountSchema) },
      },
    },
    async (request, reply) => {
      const page = await reader.topics({ after: request.query.after ?? '', limit: request.query.limit, readable: readFilter(request) });
      return sendPage(reply, page, stallTimeoutMs);
    },
  );
};
