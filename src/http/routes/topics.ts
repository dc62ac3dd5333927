import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { readFilter } from '../access/scoped-access.js';
import { sendPage } from '../send-page.js';
import type { ReadRouteOptions } from './events.js';
import { TopicsPageSchema, TopicsQuerySchema } from '../schemas/topics.js';

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
        response: { 200: TopicsPageSchema },
      },
    },
    async (request, reply) => {
      const page = await reader.topics({ after: request.query.after ?? '', limit: request.query.limit, readable: readFilter(request) });
      return sendPage(reply, page, stallTimeoutMs);
    },
  );
};
