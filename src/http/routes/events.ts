import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { PurgeCheck } from '../../stream/purge-check.js';
import type { EventReader } from '../../store/store.js';
import { EventsPageSchema, EventsQuerySchema, PURGED_THROUGH_HEADER } from '../schemas/events.js';
import { checkReadable, readFilter } from '../access/scoped-access.js';
import { sendPage } from '../send-page.js';

export interface ReadRouteOptions {
  reader: EventReader;
  /** A client that reads nothing of its answer for this long is disconnected. */
  stallTimeoutMs: number;
  maxPageBytes: number;
}

/** GET /events: stored unique events in commit order, paged by `after` (the last seq seen) and `limit`. */
export const eventsRoutes: FastifyPluginAsyncTypebox<ReadRouteOptions & { purges: PurgeCheck }> = async (
  app, { reader, purges, stallTimeoutMs, maxPageBytes },
) => {
  app.get(
    '/events',
    {
      schema: {
        summary: 'Stored unique events, oldest first',
        description: `Commit order. Page with after=<last seq seen>; an empty array is the end. An unknown topic is an empty array. `
          + `A page holds at most \`limit\` events and at most MAX_PAGE_BYTES (here ${maxPageBytes}) bytes: it stops before the event `
          + `that would pass that, but always holds at least one. Retention may purge old events: a page whose \`after\` is behind `
          + `a purge carries ${PURGED_THROUGH_HEADER}.`,
        querystring: EventsQuerySchema,
        // Documentation only: the body is JSON text built by the store, sent as it is.
        response: { 200: EventsPageSchema },
      },
    },
    async (request, reply) => {
      const { topic, after } = request.query;
      const topics = topic === undefined ? undefined : [topic];
      if (topics) checkReadable(request, topics);
      // Without a topic, an access token reads (and is told of purges of) only the topics it may read.
      const readable = readFilter(request);
      const page = await reader.page({ ...request.query, readable });
      // After the page, so that no purge the page missed goes untold.
      const purged = await purges.behind(topics, after, readable);
      if (purged) reply.header(PURGED_THROUGH_HEADER, purged.max);
      return sendPage(reply, page, stallTimeoutMs);
    },
  );
};
