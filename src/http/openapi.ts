import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { OtlpLogsRequestSchema } from './otlp/otlp-json-schema.js';
import { PublishBodySchema } from './schemas/publish.js';

/** Request bodies the handlers read themselves, for the document only. */
const DOCUMENTED_BODIES: Record<string, { body: unknown; consumes: string[] }> = {
  '/publish': { body: PublishBodySchema, consumes: ['application/json', 'application/x-ndjson'] },
  '/v1/logs': { body: OtlpLogsRequestSchema, consumes: ['application/x-protobuf', 'application/json'] },
};

/**
 * GET /docs (UI) and /docs/json (OpenAPI 3), generated from the routes' TypeBox schemas. The publish and
 * OTLP bodies are added to the document only: their validation runs in the handlers, which report every
 * bad event by index (or line), something a schema validator's first-error answer cannot do.
 */
export function registerOpenApi(app: FastifyInstance, version: string): void {
  app.register(swagger, {
    openapi: {
      info: {
        title: 'pubsub-aggregator',
        version,
        description: 'Publish-subscribe log aggregator with an idempotent consumer: each (topic, event_id) is stored once.',
      },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http', scheme: 'bearer',
            description: 'AUTH_TOKEN (publishing; reads too) and AUTH_READ_TOKEN (reads, with AUTH_READS), or a token of '
              + 'AUTH_TOKENS_FILE, whose rights are scoped to topics (README, "Access control"). Without any of these settings, no token is needed.',
          },
        },
      },
      // Every route but the public health checks (which say `security: []` below).
      security: [{ bearer: [] }],
    },
    transform: ({ schema, url, route }) => {
      const documented = Object.hasOwn(DOCUMENTED_BODIES, url) ? { ...schema, ...DOCUMENTED_BODIES[url] } : schema;
      return { schema: route.config?.access === 'public' ? { ...documented, security: [] } : documented, url };
    },
  });
  app.register(swaggerUi, { routePrefix: '/docs' });
}
