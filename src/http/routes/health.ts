import type { FastifyPluginAsync } from 'fastify';
import type { Pipeline } from '../../pipeline/pipeline.js';

/** GET /healthz: the process answers. GET /readyz: the consumer runs and the store accepts commits. */
export const healthRoutes: FastifyPluginAsync<{ pipeline: Pipeline }> = async (app, { pipeline }) => {
  app.get('/healthz', { config: { access: 'public' } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { access: 'public' } }, async (_request, reply) => {
    const reason = pipeline.notReadyReason();
    return reason === undefined ? { status: 'ready' } : reply.code(503).send({ status: 'not_ready', reason });
  });
};
