import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Pipeline } from '../../pipeline/pipeline.js';
import type { RejectionCounters } from '../rejections.js';
import { NdjsonBody, parseNdjsonEvents } from '../body/ndjson-body.js';
import { namedTopics, parsePublishBody, type PublishLimits } from '../body/publish-body.js';
import { checkPublishable } from '../access/scoped-access.js';
import { CommittedSchema, PublishErrorResponses, PublishQuerySchema, QueuedSchema } from '../schemas/publish.js';

interface PublishOptions {
  pipeline: Pipeline;
  limits: PublishLimits;
  rejections: RejectionCounters;
}

/**
 * POST /publish: validates the whole request, queues it all-or-nothing, and answers 200 once committed
 * (default) or 202 once queued (?ack=queued).
 */
export const publishRoutes: FastifyPluginAsyncTypebox<PublishOptions> = async (app, { pipeline, limits, rejections }) => {
  app.post(
    '/publish',
    {
      config: { access: 'publish' },
      schema: {
        summary: 'Publish events',
        description: 'Answers 200 once every event is committed (group commit), or 202 with ?ack=queued once queued. '
          + 'With an access token of AUTH_TOKENS_FILE, a request naming any topic outside its publish patterns is refused whole (403 TOPIC_FORBIDDEN).',
        querystring: PublishQuerySchema,
        security: [{ bearer: [] }],
        response: { 200: CommittedSchema, 202: QueuedSchema, ...PublishErrorResponses },
      },
    },
    async (request, reply) => {
      if (request.grant) checkPublishable(request, namedTopics(request.body instanceof NdjsonBody ? request.body.items : request.body));
      let events;
      try {
        const receivedAt = new Date().toISOString();
        events = request.body instanceof NdjsonBody
          ? parseNdjsonEvents(request.body, limits, receivedAt)
          : parsePublishBody(request.body, request.jsonText, limits, receivedAt);
      } catch (error) {
        rejections.invalid++;
        throw error;
      }
      if (request.query.ack === 'queued') return reply.code(202).send({ accepted: pipeline.enqueue(events), queued: true });
      return reply.code(200).send(await pipeline.publish(events));
    },
  );
};
