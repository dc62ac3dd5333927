import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import type { IncomingEvent } from '../../event.js';
import { ApiError, type ErrorCode, type EventProblem } from '../errors.js';
import { jsonLosses, type JsonPath } from './json-fidelity.js';
import { EventSchema, type PublishedEvent } from '../../event.js';
import { IDENTITY_FORMATS } from '../../event-rules.js';

const checkEvent = TypeCompiler.Compile(EventSchema);

/** Reported per request at most, so a huge bad batch gets a bounded answer. */
const MAX_PROBLEMS = 100;
/** Reported per event at most. */
const MAX_PROBLEMS_PER_EVENT = 5;

export interface PublishLimits {
  maxEventsPerRequest: number;
  maxPayloadBytes: number;
}

const refuse = (code: ErrorCode, message: string, errors: EventProblem[] = []): ApiError =>
  new ApiError(code, message, { errors });

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The events of a body that is one event, an array of events, or {"events": [...]}. */
function unwrap(body: unknown): unknown[] | string {
  if (Array.isArray(body)) return body;
  if (!isPlainObject(body)) return 'the body must be an event object, an array of events, or {"events": [...]}';
  if (!Object.hasOwn(body, 'events')) return [body];
  if (Object.keys(body).length !== 1) return 'a body with "events" must have no other fields';
  return Array.isArray(body.events) ? body.events : '"events" must be an array of events';
}

/**
 * The topics a body names, valid events or not: an access token's publish rights are checked on these
 * before anything else, so a batch with a forbidden topic is refused as forbidden even when it is invalid too.
 */
export function namedTopics(body: unknown): Set<string> {
  const events = unwrap(body);
  const topics = new Set<string>();
  if (typeof events === 'string') return topics;
  for (const event of events) {
    if (isPlainObject(event) && typeof event.topic === 'string') topics.add(event.topic);
  }
  return topics;
}

function describe(error: ValueError): string {
  const identityRule = error.type === ValueErrorType.StringFormat && IDENTITY_FORMATS[error.schema.format as string];
  if (identityRule) return identityRule(error.value as string) ?? error.message;
  const custom = (error.schema as { 'x-error-message'?: string })['x-error-message'];
  const usesCustom = error.type === ValueErrorType.StringPattern || error.type === ValueErrorType.StringFormat;
  return usesCustom && custom ? custom : error.message.replace(/^Expected/, 'expected');
}

function problemsOf(index: number, value: unknown): EventProblem[] {
  const problems: EventProblem[] = [];
  for (const error of checkEvent.Errors(value)) {
    problems.push({ index, field: error.path.slice(1) || '(event)', reason: describe(error) });
    if (problems.length === MAX_PROBLEMS_PER_EVENT) break;
  }
  return problems;
}

/**
 * Deepest nesting accepted in a payload. Stored payloads must stay readable by every JSON parser
 * downstream, SQLite's included (it stops at 1000 levels); no real log event nests this deep.
 */
export const MAX_PAYLOAD_DEPTH = 100;

/** Whether JSON text nests deeper than `max`; a bracket inside a string does not count. */
function nestsDeeperThan(json: string, max: number): boolean {
  // Each level takes at least two characters, so short text cannot be too deep.
  if (json.length <= 2 * max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** Serializes the payload and checks its size and depth; returns the problem text or the JSON. */
function serializePayload(payload: Record<string, unknown>, maxBytes: number): { json: string } | { problem: string } {
  let json: string;
  try {
    json = JSON.stringify(payload);
  } catch {
    return { problem: `nests deeper than ${MAX_PAYLOAD_DEPTH} levels` };
  }
  const bytes = Buffer.byteLength(json);
  if (bytes > maxBytes) return { problem: `is ${bytes} bytes of JSON; at most ${maxBytes} are accepted` };
  return nestsDeeperThan(json, MAX_PAYLOAD_DEPTH) ? { problem: `nests deeper than ${MAX_PAYLOAD_DEPTH} levels` } : { json };
}

/** `payload.a[0]["b c"]` */
function renderPath(path: JsonPath): string {
  return path
    .map((step, i) => {
      if (typeof step === 'number') return `[${step}]`;
      if (/^[A-Za-z_$][\w$]*$/.test(step)) return i === 0 ? step : `.${step}`;
      return `[${JSON.stringify(step.length > 40 ? `${step.slice(0, 40)}…` : step)}]`;
    })
    .join('');
}

/** The event a path into the body points into, and the path inside that event; undefined outside every event. */
function locate(body: unknown, path: JsonPath): { index: number; inEvent: JsonPath } | undefined {
  const [first, second] = path;
  if (Array.isArray(body)) return typeof first === 'number' ? { index: first, inEvent: path.slice(1) } : undefined;
  if (isPlainObject(body) && Object.hasOwn(body, 'events')) {
    return typeof second === 'number' ? { index: second, inEvent: path.slice(2) } : undefined;
  }
  return { index: 0, inEvent: path };
}

/**
 * What the JSON text of a body says that its parsed value does not keep (numbers a double cannot hold,
 * duplicate keys), per event: such an event would not read back as the value it was sent as.
 */
function lossesPerEvent(body: unknown, text: string): EventProblem[] {
  return jsonLosses(body, text, MAX_PROBLEMS).map(({ path, reason }) => {
    const where = locate(body, path);
    if (!where || where.inEvent.length === 0) throw refuse('INVALID_BODY', `${renderPath(path) || 'the body'}: ${reason}`);
    return lossInEvent(where.index, where.inEvent, reason);
  });
}

function lossInEvent(index: number, inEvent: JsonPath, reason: string): EventProblem {
  const detail = inEvent.length > 1 ? `${renderPath(inEvent)}: ${reason}` : reason;
  return { index, field: String(inEvent[0] ?? '(event)'), reason: detail };
}

/** What parsing one event's own JSON `text` into `event` lost (see lossesPerEvent): for bodies of one event per line. */
export function lossesInEvent(index: number, event: unknown, text: string): EventProblem[] {
  return jsonLosses(event, text, MAX_PROBLEMS).map(({ path, reason }) => lossInEvent(index, path, reason));
}

/** One event checked by the rules of /publish: the event on its way to the store, or why it is refused. */
export function acceptEvent(item: unknown, index: number, limits: PublishLimits, receivedAt: string): IncomingEvent | EventProblem[] {
  if (!checkEvent.Check(item)) return problemsOf(index, item);
  const event = item as PublishedEvent;
  const payload = serializePayload(event.payload, limits.maxPayloadBytes);
  if ('problem' in payload) return [{ index, field: 'payload', reason: payload.problem }];
  return {
    topic: event.topic, eventId: event.event_id, timestamp: event.timestamp, source: event.source,
    payload: payload.json, receivedAt,
  };
}

/** Refuses a request with more events than MAX_EVENTS_PER_REQUEST. */
export function refuseTooMany(count: number, limits: PublishLimits): ApiError {
  return refuse('TOO_MANY_EVENTS', `the request has ${count} events; at most ${limits.maxEventsPerRequest} are accepted per request`);
}

/**
 * Checks every item of a request. All-or-nothing: one bad event refuses the request, and the answer names
 * every bad event by index with its reasons; `losses` is asked only once every event is valid. Throws
 * ApiError when the request is refused.
 */
export function acceptAll(
  items: readonly unknown[], limits: PublishLimits, receivedAt: string, losses: () => EventProblem[],
): IncomingEvent[] {
  if (items.length === 0) throw refuse('INVALID_BODY', 'the request contains no events');
  if (items.length > limits.maxEventsPerRequest) throw refuseTooMany(items.length, limits);

  const events: IncomingEvent[] = [];
  let problems: EventProblem[] = [];
  let invalid = 0;
  items.forEach((item, index) => {
    const accepted = acceptEvent(item, index, limits, receivedAt);
    if (!Array.isArray(accepted)) {
      events.push(accepted);
      return;
    }
    invalid++;
    problems.push(...accepted.slice(0, MAX_PROBLEMS - problems.length));
  });
  if (invalid === 0) {
    // Only once every event is valid: a valid body nests ~100 levels at most, whatever its text.
    problems = losses();
    if (problems.length === 0) return events;
    invalid = new Set(problems.map((problem) => problem.index)).size;
  }
  const shown = problems.length === MAX_PROBLEMS ? ` (the first ${MAX_PROBLEMS} problems are listed)` : '';
  throw refuse('INVALID_EVENT', `${invalid} of ${items.length} events are invalid; nothing was stored${shown}`, problems);
}

/**
 * Validates a whole publish body, parsed from the JSON `text` (see acceptAll). Throws ApiError when the
 * request is refused.
 */
export function parsePublishBody(body: unknown, text: string, limits: PublishLimits, receivedAt: string): IncomingEvent[] {
  const items = unwrap(body);
  if (typeof items === 'string') throw refuse('INVALID_BODY', items);
  return acceptAll(items, limits, receivedAt, () => lossesPerEvent(body, text));
}
