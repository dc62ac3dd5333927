import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { PublishError } from '../pipeline/errors.js';
import { ReadersBusyError, StoreError } from '../store/store.js';

/*
 * The one error path. Every non-2xx answer is {statusCode, error, code, message} (plus `errors` for
 * per-event problems), with a stable `code` per cause that clients branch on. The table below is the list
 * of codes; docs/errors.md documents each one.
 */
export const ERROR_STATUS = {
  INVALID_JSON: 400,
  INVALID_ENCODING: 400,
  INVALID_BODY: 400,
  INVALID_EVENT: 400,
  INVALID_QUERY: 400,
  INVALID_CONSUMER: 400,
  INVALID_URL: 400,
  INVALID_HTTP: 400,
  UNAUTHORIZED: 401,
  TOPIC_FORBIDDEN: 403,
  CONSUMER_FORBIDDEN: 403,
  ADMIN_REQUIRED: 403,
  NOT_FOUND: 404,
  UNKNOWN_CONSUMER: 404,
  CONSUMER_CONFLICT: 409,
  COMMIT_BACKWARDS: 409,
  COMMIT_BEYOND_END: 409,
  REQUEST_TIMEOUT: 408,
  BODY_TOO_LARGE: 413,
  TOO_MANY_EVENTS: 413,
  REQUEST_TOO_LARGE: 413,
  URI_TOO_LONG: 414,
  UNSUPPORTED_MEDIA_TYPE: 415,
  TOPIC_LIMIT: 429,
  CONSUMER_LIMIT: 429,
  HEADERS_TOO_LARGE: 431,
  INTERNAL: 500,
  QUEUE_FULL: 503,
  CONSUMER_UNAVAILABLE: 503,
  STORE_UNAVAILABLE: 503,
  ACK_TIMEOUT: 503,
  SHUTTING_DOWN: 503,
  READERS_BUSY: 503,
  SUBSCRIBER_LIMIT: 503,
  DECODER_BUSY: 503,
} as const;
export type ErrorCode = keyof typeof ERROR_STATUS;

export interface EventProblem {
  index: number;
  /** The 1-based line of an NDJSON body the event is on. */
  line?: number;
  field: string;
  reason: string;
}

/** An error answer: its code decides the status. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: { errors?: EventProblem[]; retryAfterSeconds?: number; authenticate?: string | string[] } = {},
  ) {
    super(message);
  }

  get statusCode(): number {
    return ERROR_STATUS[this.code];
  }
}

/** Fastify's own errors, by their code, as ours. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_VALIDATION: 'INVALID_QUERY',
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INVALID_BODY',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  // The router's own refusals (frameworkErrors): a path that does not decode, a path parameter past maxParamLength.
  FST_ERR_BAD_URL: 'INVALID_URL',
  FST_ERR_MAX_PARAM_LENGTH: 'URI_TOO_LONG',
};

/** Any error thrown while answering, as the ApiError the client sees. Internals (hosts, SQL states) stay in the log. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof PublishError) return new ApiError(error.code, error.message, { retryAfterSeconds: error.retryAfterSeconds });
  if (error instanceof ReadersBusyError) return new ApiError('READERS_BUSY', 'every reader is busy; retry later', { retryAfterSeconds: 1 });
  if (error instanceof StoreError) return new ApiError('STORE_UNAVAILABLE', 'the store is not answering; retry later');
  const fastifyCode = FASTIFY_CODES[(error as FastifyError).code];
  if (fastifyCode) return new ApiError(fastifyCode, (error as Error).message);
  return new ApiError('INTERNAL', 'internal error; the server log has the details');
}

/** Fastify's error handler: logs what clients must not see and answers in the one shape. */
export function replyWithError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const api = toApiError(error);
  if (api.code === 'INTERNAL' || api.code === 'STORE_UNAVAILABLE') {
    request.log.error({ err: error, url: request.url }, 'request failed');
  }
  return sendError(reply, api);
}

/** Answers `api` in the one shape, with `extra` fields after the four (its headers too: Retry-After on a 503). */
export function sendError(reply: FastifyReply, api: ApiError, extra: Record<string, unknown> = {}): FastifyReply {
  if (api.statusCode === 503) reply.header('retry-after', String(api.details.retryAfterSeconds ?? 1));
  if (api.details.authenticate) reply.header('www-authenticate', api.details.authenticate);
  // A token's refusals are logged, named by the token (the request's log carries it); a 401 has no name to log.
  if (api.statusCode === 403) reply.request.log.info({ code: api.code, url: reply.request.url }, api.message);
  return reply.code(api.statusCode).send({ ...errorBody(api), ...extra });
}

const errorBody = (api: ApiError) => ({
  statusCode: api.statusCode,
  error: STATUS_CODES[api.statusCode],
  code: api.code,
  message: api.message,
  ...(api.details.errors ? { errors: api.details.errors } : {}),
});

/** Node's HTTP parser's refusals, before Fastify has a request: by the parser's error code. */
function clientError(code: string | undefined): ApiError {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return new ApiError('REQUEST_TIMEOUT', 'the request did not arrive whole in time');
  if (code === 'HPE_HEADER_OVERFLOW') return new ApiError('HEADERS_TOO_LARGE', 'the request line and headers are larger than the server takes (16 KiB)');
  return new ApiError('INVALID_HTTP', 'the request is not well-formed HTTP/1.1');
}

/**
 * Fastify's clientErrorHandler: the answer to a request Node could not parse (or that came too slowly), in
 * the one shape, written to the socket, which then closes: its remaining bytes cannot be trusted.
 */
export function replyToClientError(error: Error & { code?: string }, socket: Duplex): void {
  // A reset connection has nobody to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const api = clientError(error.code);
  const body = JSON.stringify(errorBody(api));
  if (socket.writable) {
    socket.end(`HTTP/1.1 ${api.statusCode} ${STATUS_CODES[api.statusCode]}\r\nContent-Type: application/json; charset=utf-8\r\n`
      + `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  } else {
    socket.destroy();
  }
}
