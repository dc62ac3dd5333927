import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { PurgeCheck } from '../../stream/purge-check.js';
import type { EventReader } from '../../store/store.js';
import type { RangeEnds } from '../../stream/time-range.js';
import { EventsPageSchema, EventsQuerySchema, PURGED_THROUGH_HEADER, RANGE_END_HEADER } from '../schemas/events.js';
import { readRange } from '../read-range.js';
import { checkReadable, readFilter } from '../access/scoped-access.js';
import { sendPage } from '../send-page.js';

export interface ReadRouteOptions {
  reader: EventReader;
  /** A client that reads nothing of its answer for this long is disconnected. */
  stallTimeoutMs: number;
  maxPageBytes: number;
}

/** GET /events: stored unique events in commit order, paged by `after` (the last seq seen) and `limit`. */
export const eventsRoutes: FastifyPluginAsyncTypebox<ReadRouteOptions & { purges: PurgeCheck; ranges: RangeEnds }> = async (
  app, { reader, purges, ranges, stallTimeoutMs, maxPageBytes },
) => {
  app.get(
    '/events',
    {
      schema: {
        summary: 'Stored unique events, oldest first',
        description: `Commit order. Page with after=<last seq seen>; an empty array is the end. An unknown topic is an empty array. `
          + `A page holds at most \`limit\` events and at most MAX_PAGE_BYTES (here ${maxPageBytes}) bytes: it stops before the event `
          + `that would pass that, but always holds at least one. Retention may purge old events: a page whose \`after\` is behind `
          + `a purge carries ${PURGED_THROUGH_HEADER}. A time range: since= starts it (when after= is absent), until= ends it; `
          + `once its end is stored, pages carry ${RANGE_END_HEADER}, and an empty one then ends the range.`,
        querystring: EventsQuerySchema,
        // Documentation only: the body is JSON text built by the store, sent as it is.
        response: { 200: EventsPageSchema },
      },
    },
    async (request, reply) => {
      const { topic, limit } = request.query;
      const { since, until } = readRange(request.query);
      const topics = topic === undefined ? undefined : [topic];
      if (topics) checkReadable(request, topics);
      // Without a topic, an access token reads (and is told of purges of) only the topics it may read.
      const readable = readFilter(request);
      const after = request.query.after ?? (since === undefined ? 0 : await reader.startAfter(since));
      const read = (before: number | undefined) => reader.page({ topic, after, limit, readable, before });
      // The page holds no seq the route could see without parsing it: a range's end found late reads it again.
      const { page, end } = until === undefined ? { page: await read(undefined), end: undefined } : await ranges.read(until, read, () => undefined);
      if (end !== undefined) reply.header(RANGE_END_HEADER, end - 1);
      // After the page, so that no purge the page missed goes untold.
      const purged = await purges.behind(topics, after, readable);
      if (purged) reply.header(PURGED_THROUGH_HEADER, purged.max);
      return sendPage(reply, page, stallTimeoutMs);
    },
  );
};
