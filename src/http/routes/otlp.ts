import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Pipeline } from '../../pipeline/pipeline.js';
import { ApiError } from '../errors.js';
import type { OtlpEncoding } from '../otlp/decode-export.js';
import type { OtlpDecoder } from '../otlp/otlp-decoder.js';
import { OtlpLogsResponseSchema } from '../otlp/otlp-json-schema.js';
import type { RejectionCounters } from '../rejections.js';
import { checkPublishable } from '../access/scoped-access.js';
import { PublishErrorResponses } from '../schemas/publish.js';

interface OtlpOptions {
  pipeline: Pipeline;
  decoder: OtlpDecoder;
  rejections: RejectionCounters;
}

const PROTOBUF = 'application/x-protobuf';
const JSON_TYPE = 'application/json';

/**
 * POST /v1/logs (OTLP/HTTP): each log record of an ExportLogsServiceRequest becomes an event
 * (docs/ingest.md). Answers 200 with an ExportLogsServiceResponse in the request's encoding once every
 * event is committed, as /publish's default acknowledgement; records that cannot become events are
 * reported in partialSuccess, and the others are stored.
 */
export const otlpRoutes: FastifyPluginAsyncTypebox<OtlpOptions> = async (app, { pipeline, decoder, rejections }) => {
  // This plugin's own body parsers: the raw bytes of both encodings go to the decoder worker as they are.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser([PROTOBUF, JSON_TYPE], { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.post(
    '/v1/logs',
    {
      config: { access: 'publish' },
      schema: {
        summary: 'Ingest OpenTelemetry logs (OTLP/HTTP)',
        description:
          'An ExportLogsServiceRequest as application/x-protobuf or application/json (OTLP/JSON), optionally gzip. ' +
          'Answers 200 with an ExportLogsServiceResponse in the same encoding once every event is committed.',
        consumes: [PROTOBUF, JSON_TYPE],
        produces: [PROTOBUF, JSON_TYPE],
        security: [{ bearer: [] }],
        response: { 200: OtlpLogsResponseSchema, ...PublishErrorResponses },
      },
    },
    async (request, reply) => {
      const encoding: OtlpEncoding = request.headers['content-type']?.toLowerCase().startsWith(PROTOBUF) ? 'protobuf' : 'json';
      let batch;
      try {
        batch = await decoder.decode(encoding, request.body as Buffer, new Date().toISOString());
      } catch (error) {
        if (error instanceof ApiError && error.statusCode === 400) rejections.invalid++;
        throw error;
      }
      // A token scoped to topics publishes the whole export or none of it, as on /publish.
      checkPublishable(request, batch.events.map((event) => event.topic));
      if (batch.events.length > 0) await pipeline.publish(batch.events);
      const { rejected, errorMessage } = batch;
      if (encoding === 'protobuf') {
        // The generated protobuf code takes ~150 ms to load: loaded by the first protobuf export (the
        // decoder thread loads it then too), not by every server start.
        const { encodeLogsResponse } = await import('../otlp/otlp-messages.js');
        // Bytes, which Fastify sends as they are: the response schema describes the JSON encoding.
        return reply.code(200).type(PROTOBUF).send(Buffer.from(encodeLogsResponse(rejected, errorMessage)) as never);
      }
      return reply.code(200).send(rejected > 0 ? { partialSuccess: { rejectedLogRecords: String(rejected), errorMessage } } : {});
    },
  );
};
