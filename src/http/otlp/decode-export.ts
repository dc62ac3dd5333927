import { TextDecoder } from 'node:util';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import secureJson from 'secure-json-parse';
import type { ErrorCode } from '../errors.js';
import { jsonLosses } from '../body/json-fidelity.js';
import type { PublishLimits } from '../body/publish-body.js';
import { logEvents, type OtlpEvents, type OtlpMapping } from './log-events.js';
import { decodeLogsRequest, logsRequestFromJson, type LogsRequest } from './otlp-messages.js';
import { INT64_FIELDS, OtlpLogsRequestSchema } from './otlp-json-schema.js';

export type OtlpEncoding = 'protobuf' | 'json';

export interface DecoderSettings extends OtlpMapping, PublishLimits {}

export interface DecodeRequest {
  id: number;
  encoding: OtlpEncoding;
  body: Uint8Array;
  receivedAt: string;
}

export type DecodeResult = { id: number } & (
  | ({ ok: true } & OtlpEvents)
  | { ok: false; code: ErrorCode; message: string }
);

class Refused extends Error {
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
  }
}

const checkJsonRequest = TypeCompiler.Compile(OtlpLogsRequestSchema);
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * One OTLP export body as events: decoded (protobuf, or OTLP/JSON checked against its schema), then each
 * record mapped. Never throws for what a client sends: an undecodable body, or one nesting deeper than the
 * stack allows, is a refusal with its error code.
 */
export function decodeExport({ id, encoding, body, receivedAt }: DecodeRequest, settings: DecoderSettings): DecodeResult {
  try {
    const request = encoding === 'protobuf' ? fromProtobuf(body) : fromJson(body);
    const records = request.resourceLogs.reduce(
      (sum, resource) => sum + resource.scopeLogs.reduce((n, scope) => n + scope.logRecords.length, 0), 0);
    if (records > settings.maxEventsPerRequest) {
      throw new Refused('TOO_MANY_EVENTS',
        `the request has ${records} log records; at most ${settings.maxEventsPerRequest} are accepted per request`);
    }
    return { id, ok: true, ...logEvents(request, settings, settings, receivedAt) };
  } catch (error) {
    if (error instanceof Refused) return { id, ok: false, code: error.code, message: error.message };
    // Only a stack overflow is the client's doing: values nested deeper than any recursion can follow.
    if (error instanceof RangeError && /call stack/i.test(error.message)) {
      return { id, ok: false, code: 'INVALID_BODY', message: 'the request nests values too deeply to be read' };
    }
    throw error;
  }
}

function fromProtobuf(body: Uint8Array): LogsRequest {
  try {
    return decodeLogsRequest(body);
  } catch (error) {
    if (error instanceof RangeError && /call stack/i.test(error.message)) throw error;
    throw new Refused('INVALID_BODY', `the body is not an OTLP ExportLogsServiceRequest in protobuf: ${(error as Error).message}`);
  }
}

function fromJson(body: Uint8Array): LogsRequest {
  let text: string;
  try {
    text = strictUtf8.decode(body);
  } catch {
    throw new Refused('INVALID_ENCODING', 'the body is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (error) {
    throw new Refused('INVALID_JSON', `invalid JSON body: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Refused('INVALID_BODY', 'the body must be an OTLP ExportLogsServiceRequest object');
  }
  keepExactIntegers(value, text);
  if (!checkJsonRequest.Check(value)) {
    const first = checkJsonRequest.Errors(value).First();
    throw new Refused('INVALID_BODY', `not an OTLP/JSON ExportLogsServiceRequest: ${first?.path || '(body)'}: ${first?.message}`);
  }
  idsFromHex(value as JsonRequest);
  try {
    return logsRequestFromJson(value);
  } catch (error) {
    // What the schema cannot see, such as bytesValue that is not base64.
    throw new Refused('INVALID_BODY', `not an OTLP/JSON ExportLogsServiceRequest: ${(error as Error).message}`);
  }
}

/**
 * OTLP/JSON allows 64-bit integers as JSON numbers, which JSON.parse rounds to a double: such a field gets
 * back the literal it was written as, so 9007199254740993 stays itself.
 */
function keepExactIntegers(value: object, text: string): void {
  for (const { path, literal } of jsonLosses(value, text, Number.MAX_SAFE_INTEGER)) {
    const field = path[path.length - 1];
    if (literal === undefined || typeof field !== 'string' || !INT64_FIELDS.has(field)) continue;
    let parent: any = value;
    for (const step of path.slice(0, -1)) parent = parent?.[step];
    if (typeof parent?.[field] === 'number') parent[field] = literal;
  }
}

interface JsonRequest {
  resourceLogs?: { scopeLogs?: { logRecords?: { traceId?: unknown; spanId?: unknown }[] }[] }[];
}

/** Trace and span ids are hex in OTLP/JSON, where the generic protobuf JSON mapping (and fromObject) says base64. */
function idsFromHex(request: JsonRequest): void {
  for (const resource of request.resourceLogs ?? []) {
    for (const scope of resource.scopeLogs ?? []) {
      for (const record of scope.logRecords ?? []) {
        if (typeof record.traceId === 'string') record.traceId = Buffer.from(record.traceId, 'hex');
        if (typeof record.spanId === 'string') record.spanId = Buffer.from(record.spanId, 'hex');
      }
    }
  }
}
