import type { FastifyPluginAsync } from 'fastify';
import type { Pipeline } from '../../pipeline/pipeline.js';
import { sendError, toApiError } from '../errors.js';

/**
 * GET /healthz: the process answers. GET /readyz: the writer runs and the store accepts commits; if not,
 * 503 in the error shape with the code and Retry-After a publish would get, plus `status` and `reason`
 * (the message), which orchestrators and dashboards read.
 */
export const healthRoutes: FastifyPluginAsync<{ pipeline: Pipeline }> = async (app, { pipeline }) => {
  app.get('/healthz', { config: { access: 'public' } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { access: 'public' } }, async (_request, reply) => {
    const notReady = pipeline.notReady();
    return notReady === undefined ? { status: 'ready' } : sendError(reply, toApiError(notReady), { status: 'not_ready', reason: notReady.message });
  });
};
