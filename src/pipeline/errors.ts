/** Why the pipeline could not take or confirm a publish; HTTP maps each cause to a status (src/http/errors.ts). */
export type PublishFailure =
  | 'QUEUE_FULL'
  | 'REQUEST_TOO_LARGE'
  | 'CONSUMER_UNAVAILABLE'
  | 'STORE_UNAVAILABLE'
  | 'ACK_TIMEOUT'
  | 'SHUTTING_DOWN'
  | 'TOPIC_LIMIT';

/** A publish the pipeline could not take. Its message is safe to show to clients: no hosts, ports or SQL states. */
export class PublishError extends Error {
  override name = 'PublishError';
  constructor(
    readonly code: PublishFailure,
    message: string,
    /** Seconds a client should wait before retrying; sent as Retry-After. */
    readonly retryAfterSeconds = 1,
  ) {
    super(message);
  }
}
