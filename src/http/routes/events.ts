import type { FastifyPluginAsync } from 'fastify';
import type { EventReader } from '../../store/store.js';
import { EventsQuerySchema, type EventsQuery } from '../schemas.js';

/** GET /events: stored unique events in commit order, paged by `after` (the last seq seen) and `limit`. */
export const eventsRoutes: FastifyPluginAsync<{ reader: EventReader }> = async (app, { reader }) => {
  app.get<{ Querystring: EventsQuery }>('/events', { schema: { querystring: EventsQuerySchema } }, async (request, reply) => {
    return reply.type('application/json; charset=utf-8').send(reader.page(request.query));
  });
};
