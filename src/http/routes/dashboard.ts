import { readFileSync } from 'node:fs';
import type { FastifyPluginAsync } from 'fastify';

/** GET /: the operators' live page; plain HTML and JavaScript polling /stats, no build step. */
export const dashboardRoutes: FastifyPluginAsync = async (app) => {
  const page = readFileSync(new URL('../dashboard/index.html', import.meta.url), 'utf8');
  app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.type('text/html; charset=utf-8').send(page));
};
