import type { FastifyPluginAsync } from 'fastify';
import type { EventReader } from '../../store/store.js';
import { Type } from '@sinclair/typebox';
import { EventsQuerySchema, StoredEventSchema, type EventsQuery } from '../schemas.js';

/** GET /events: stored unique events in commit order, paged by `after` (the last seq seen) and `limit`. */
export const eventsRoutes: FastifyPluginAsync<{ reader: EventReader }> = async (app, { reader }) => {
  app.get<{ Querystring: EventsQuery }>(
    '/events',
    {
      schema: {
        summary: 'Stored unique events, oldest first',
        description: 'Commit order. Page with after=<last seq seen>. An unknown topic is an empty array.',
        querystring: EventsQuerySchema,
        // Documentation only: the body is JSON text built by SQLite, sent as it is.
        response: { 200: Type.Array(StoredEventSchema) },
      },
    },
    async (request, reply) => reply.type('application/json; charset=utf-8').serializer((text) => text as string).send(await reader.page(request.query)),
  );
};
