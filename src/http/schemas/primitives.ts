import { Type, type IntegerOptions, type TSchema } from '@sinclair/typebox';
import { Topic } from '../../event.js';
import { MIN_GZIP_BYTES } from '../compression.js';

/*
 * The building blocks every route's schemas share, each declared once: a seq, a page's limit, a topic, a
 * time bound of a read, a count, the one error shape, and the headers of a read that may be compressed.
 */

export { Topic };

/** A commit sequence number as a request carries it (a cursor, a position, a start). */
export const Seq = (options: IntegerOptions = {}) => Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, ...options });

/** How many items one page may hold. */
export const PageLimit = Type.Integer({ minimum: 1, maximum: 10_000, default: 1000, description: 'At most this many items' });

/** A time a read is bounded by, compared with each event's received_at (README, "Time ranges"). */
export const ReadTime = (description: string) => Type.String({
  format: 'date-time',
  description: `RFC 3339 with a zone, on a real calendar date, no leap second (as publish's timestamp): ${description}`,
});

/** A read's time range, shared by /events, /events/stream and consumer pages (README, "Time ranges"). */
export const TimeRangeQuery = {
  since: Type.Optional(ReadTime('from the first event, in commit order, received at or after it')),
  until: Type.Optional(ReadTime('up to the first event, in commit order, received after it, which is not included (nor any after it)')),
};

/** A count in an answer. */
export const Count = (description?: string) => Type.Integer({ minimum: 0, ...(description && { description }) });

/** A field that may be null. */
export const Nullable = <T extends TSchema>(schema: T, description?: string) =>
  Type.Union([schema, Type.Null()], description === undefined ? {} : { description });

/** Every error answer: Fastify's shape, plus the per-event problems of a refused publish. */
export const ErrorSchema = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String({ description: 'Stable cause of the error; see docs/errors.md' }),
  error: Type.String(),
  message: Type.String(),
  errors: Type.Optional(Type.Array(Type.Object({
    index: Type.Integer(),
    line: Type.Optional(Type.Integer({ description: 'The 1-based line of an NDJSON body' })),
    field: Type.String(),
    reason: Type.String(),
  }))),
});

/** The error shape with one documented example. */
export const errorExample = (statusCode: number, error: string, code: string, message: string, extra = {}) =>
  Type.Object(ErrorSchema.properties, { description: message, examples: [{ statusCode, error, code, message, ...extra }] });

/** The response headers of a read that may be compressed, as the OpenAPI document lists them. */
export const COMPRESSION_HEADERS = {
  'Content-Encoding': Type.Literal('gzip', {
    description: `Present when the request's Accept-Encoding takes gzip (q-values honoured, identity when it does not) `
      + `and the body is at least ${MIN_GZIP_BYTES} bytes (a stream always is)`,
  }),
  Vary: Type.Literal('Accept-Encoding', { description: 'Always: the encoding follows Accept-Encoding' }),
};
