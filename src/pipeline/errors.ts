/** A publish the pipeline could not take, with the HTTP status that says why. */
export class PublishError extends Error {
  constructor(
    readonly statusCode: 413 | 503,
    message: string,
    /** Seconds a client should wait before retrying; sent as Retry-After. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export const unavailable = (message: string): PublishError => new PublishError(503, message, 1);
