import type { PublishedEvent } from '../event.js';

/** One event's problem in a refused publish, as the server names it (`index` is into the refused request). */
export interface EventProblem {
  index: number;
  field: string;
  reason: string;
}

/** The error body every non-2xx answer carries (docs/errors.md). */
interface ErrorBody {
  code?: string;
  message?: string;
  errors?: EventProblem[];
}

/**
 * A refusal that waiting will not fix (a 4xx other than a passing 429): `code` is the server's stable error
 * code (docs/errors.md) to branch on, `status` the HTTP status.
 */
export class AggregatorError extends Error {
  override name = 'AggregatorError';

  constructor(readonly status: number, readonly code: string, message: string, readonly errors: EventProblem[] = []) {
    super(message);
  }

  /** From a refused answer, whatever its body (a proxy's HTML page has no code: it is named by its status). */
  static async from(res: Response): Promise<AggregatorError> {
    const text = await res.text().catch(() => '');
    let body: ErrorBody = {};
    try {
      body = JSON.parse(text) as ErrorBody;
    } catch {
      // not the aggregator's JSON: the status and the text are all there is
    }
    const code = body.code ?? `HTTP_${res.status}`;
    return new AggregatorError(res.status, code, `HTTP ${res.status} ${code}: ${body.message ?? text.slice(0, 200)}`, body.errors ?? []);
  }
}

/**
 * Events the publisher could not get stored: the server refused them (its `code`, and per event `errors`
 * whose `index` is into `events`), or every attempt failed (`code` RETRIES_EXHAUSTED, `status` that of the
 * last answer, 0 when there was none).
 */
export class PublishError extends AggregatorError {
  override name = 'PublishError';

  constructor(refusal: AggregatorError, readonly events: PublishedEvent[]) {
    super(refusal.status, refusal.code, `${events.length} event(s) not stored: ${refusal.message}`, refusal.errors);
  }
}
