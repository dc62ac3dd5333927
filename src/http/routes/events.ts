import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { EventReader } from '../../store/store.js';
import { Type } from '@sinclair/typebox';
import { EventsQuerySchema, StoredEventSchema } from '../schemas.js';
import { sendPage } from '../send-page.js';

export interface ReadRouteOptions {
  reader: EventReader;
  /** A client that reads nothing of its answer for this long is disconnected. */
  stallTimeoutMs: number;
  maxPageBytes: number;
}

/** GET /events: stored unique events in commit order, paged by `after` (the last seq seen) and `limit`. */
export const eventsRoutes: FastifyPluginAsyncTypebox<ReadRouteOptions> = async (app, { reader, stallTimeoutMs, maxPageBytes }) => {
  app.get(
    '/events',
    {
      schema: {
        summary: 'Stored unique events, oldest first',
        description: `Commit order. Page with after=<last seq seen>; an empty array is the end. An unknown topic is an empty array. `
          + `A page holds at most \`limit\` events and at most MAX_PAGE_BYTES (here ${maxPageBytes}) bytes: it stops before the event `
          + 'that would pass that, but always holds at least one.',
        querystring: EventsQuerySchema,
        // Documentation only: the body is JSON text built by the store, sent as it is.
        response: { 200: Type.Array(StoredEventSchema) },
      },
    },
    async (request, reply) => sendPage(reply, await reader.page(request.query), stallTimeoutMs),
  );
};
