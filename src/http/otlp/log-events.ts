import { createHash } from 'node:crypto';
import type { IncomingEvent } from '../../event.js';
import { acceptEvent, MAX_PAYLOAD_DEPTH, type PublishLimits } from '../body/publish-body.js';
import type { AnyValue, Int64, KeyValue, LogRecord, LogsRequest, ResourceLogs, ScopeLogs } from './otlp-messages.js';

/** How log records become events: OTLP_TOPIC_ATTRIBUTE and OTLP_DEFAULT_TOPIC. */
export interface OtlpMapping {
  topicAttribute: string;
  defaultTopic: string;
}

/** The events of one export request, and the records that could not become one (OTLP's partial success). */
export interface OtlpEvents {
  events: IncomingEvent[];
  rejected: number;
  /** Why the first rejected record was rejected; empty when none was. */
  errorMessage: string;
}

/** OpenTelemetry's semantic convention for a record's identity: records with the same uid are duplicates. */
const RECORD_UID = 'log.record.uid';
const SOURCE_ATTRIBUTES = ['service.instance.id', 'service.name'];
const DEFAULT_SOURCE = 'otlp';

/** A JSON value as plain JSON can carry it. */
type Plain = null | boolean | number | string | Plain[] | { [key: string]: Plain };

/** Why a record cannot become an event, found while mapping it. */
class Unfit extends Error {}

/**
 * Walks one payload's values, counting a lower bound of the JSON bytes they will take (a string's quotes
 * and characters, a key's quotes and colon, a separator per item) and their nesting. Past the payload
 * limit or depth the record is refused right there, so a record of a million attributes costs the work
 * of MAX_PAYLOAD_BYTES, not of the million.
 */
class PayloadWalk {
  private left: number;

  constructor(private readonly maxBytes: number) {
    this.left = maxBytes;
  }

  spend(bytes: number): void {
    this.left -= bytes;
    if (this.left < 0) throw new Unfit(`payload is more than ${this.maxBytes} bytes of JSON; at most ${this.maxBytes} are accepted`);
  }

  enter(depth: number): void {
    if (depth > MAX_PAYLOAD_DEPTH) throw new Unfit(`payload nests deeper than ${MAX_PAYLOAD_DEPTH} levels`);
  }
}

/**
 * Each LogRecord of an export request as an event (docs/ingest.md): topic from a resource attribute,
 * event_id from log.record.uid or a SHA-256 of the whole record, timestamp with its nanoseconds, payload
 * the record as plain JSON. A record that breaks an event rule of /publish is counted as rejected, and
 * the others are kept.
 */
export function logEvents(request: LogsRequest, mapping: OtlpMapping, limits: PublishLimits, receivedAt: string): OtlpEvents {
  const result: OtlpEvents = { events: [], rejected: 0, errorMessage: '' };
  const reject = (where: string, reason: string) => {
    if (result.rejected++ === 0) result.errorMessage = `${where}: ${reason}`;
  };
  request.resourceLogs.forEach((resourceLogs, r) => {
    let resource: ResourceView;
    try {
      resource = resourceView(resourceLogs, mapping, new PayloadWalk(limits.maxPayloadBytes));
    } catch (error) {
      if (!(error instanceof Unfit)) throw error;
      for (const scopeLogs of resourceLogs.scopeLogs) for (const _ of scopeLogs.logRecords) reject(`resourceLogs[${r}]`, error.message);
      return;
    }
    resourceLogs.scopeLogs.forEach((scopeLogs, s) => {
      scopeLogs.logRecords.forEach((record, l) => {
        const where = `resourceLogs[${r}].scopeLogs[${s}].logRecords[${l}]`;
        try {
          const event = eventOf(record, scopeLogs, resource, receivedAt, new PayloadWalk(limits.maxPayloadBytes));
          const accepted = acceptEvent(event, result.events.length, limits, receivedAt);
          if (Array.isArray(accepted)) reject(where, accepted.map((p) => `${p.field} ${p.reason}`).join('; '));
          else result.events.push(accepted);
        } catch (error) {
          if (!(error instanceof Unfit)) throw error;
          reject(where, error.message);
        }
      });
    });
  });
  return result;
}

interface ResourceView {
  topic: string;
  source: string;
  /** The resource part of every payload: its attributes, dropped count and schema URL. */
  payload: Record<string, Plain>;
}

function resourceView({ resource, schemaUrl }: ResourceLogs, mapping: OtlpMapping, walk: PayloadWalk): ResourceView {
  const attributes = attributesOf(resource?.attributes ?? [], 1, walk);
  const named = (key: string): string | undefined => (Object.hasOwn(attributes, key) ? asText(attributes[key]!) : undefined);
  return {
    topic: named(mapping.topicAttribute) ?? mapping.defaultTopic,
    source: SOURCE_ATTRIBUTES.map(named).find((value) => value !== undefined) ?? DEFAULT_SOURCE,
    payload: withoutDefaults({ attributes, droppedAttributesCount: resource?.droppedAttributesCount ?? 0, schemaUrl }),
  };
}

function eventOf(record: LogRecord, scopeLogs: ScopeLogs, resource: ResourceView, receivedAt: string, walk: PayloadWalk) {
  const attributes = attributesOf(record.attributes, 1, walk);
  const scope = scopeLogs.scope;
  const payload = withoutDefaults({
    timeUnixNano: uint64Text(record.timeUnixNano),
    observedTimeUnixNano: uint64Text(record.observedTimeUnixNano),
    severityNumber: record.severityNumber,
    severityText: record.severityText,
    attributes,
    droppedAttributesCount: record.droppedAttributesCount,
    flags: record.flags,
    traceId: hex(record.traceId),
    spanId: hex(record.spanId),
    eventName: record.eventName,
    resource: resource.payload,
    scope: withoutDefaults({
      name: scope?.name ?? '',
      version: scope?.version ?? '',
      attributes: attributesOf(scope?.attributes ?? [], 1, walk),
      droppedAttributesCount: scope?.droppedAttributesCount ?? 0,
      schemaUrl: scopeLogs.schemaUrl,
    }),
  });
  // A message field, not a scalar: a body that is set stays, even when it is "" or 0.
  if (record.body) payload.body = plain(record.body, 1, walk);
  const uid = Object.hasOwn(attributes, RECORD_UID) ? asText(attributes[RECORD_UID]!) : undefined;
  return {
    topic: resource.topic,
    // Computed from the payload, which holds the whole record, its scope and its resource, but never the
    // time of receipt: an exporter's retry of the same batch gets the same ids.
    event_id: uid ?? createHash('sha256').update(JSON.stringify(payload)).digest('hex'),
    timestamp: timestampOf(record, receivedAt),
    source: resource.source,
    payload,
  };
}

/** RFC 3339 with every nanosecond: timeUnixNano, else observedTimeUnixNano, else the time of receipt. */
function timestampOf(record: LogRecord, receivedAt: string): string {
  const nanos = [record.timeUnixNano, record.observedTimeUnixNano].map(uint64).find((value) => value !== 0n);
  if (nanos === undefined) return receivedAt;
  const seconds = new Date(Number(nanos / 1_000_000_000n) * 1000).toISOString().slice(0, 19);
  return `${seconds}.${(nanos % 1_000_000_000n).toString().padStart(9, '0')}Z`;
}

/** A fixed64 as an unsigned integer (fromObject gives it a signed Long; the value's bits are what count). */
const uint64 = (value: Int64 | null): bigint => (value === null ? 0n : BigInt.asUintN(64, BigInt(value.toString())));
const uint64Text = (value: Int64 | null): string => {
  const text = uint64(value).toString();
  return text === '0' ? '' : text;
};

const hex = (bytes: Uint8Array | null): string => (bytes ? Buffer.from(bytes).toString('hex') : '');

/** Attributes as one object; a key given twice keeps its last value, as a JSON object would. */
function attributesOf(attributes: KeyValue[], depth: number, walk: PayloadWalk): Record<string, Plain> {
  // No prototype: an attribute named __proto__ is data, not the object's prototype.
  const object: Record<string, Plain> = Object.create(null);
  for (const { key, value } of attributes) {
    walk.spend(key.length + 4);
    object[key] = value ? plain(value, depth + 1, walk) : null;
  }
  return object;
}

/** An AnyValue as plain JSON, exactly: an int64 a double cannot hold as its decimal string, bytes as base64. */
function plain(value: AnyValue, depth: number, walk: PayloadWalk): Plain {
  walk.enter(depth);
  walk.spend(1);
  switch (value.value) {
    case 'stringValue':
      walk.spend(value.stringValue!.length + 1);
      return value.stringValue!;
    case 'boolValue': return value.boolValue!;
    case 'intValue': {
      // A number only where JSON text of the double is the integer itself (every integer up to 2^53 in size).
      const text = BigInt.asIntN(64, BigInt(value.intValue!.toString())).toString();
      return String(Number(text)) === text ? Number(text) : text;
    }
    // JSON has no NaN or infinities: those stay as OTLP/JSON writes them.
    case 'doubleValue': return Number.isFinite(value.doubleValue) ? value.doubleValue! : String(value.doubleValue);
    case 'arrayValue': return (value.arrayValue?.values ?? []).map((item) => plain(item, depth + 1, walk));
    case 'kvlistValue': return attributesOf(value.kvlistValue?.values ?? [], depth, walk);
    case 'bytesValue':
      walk.spend(value.bytesValue!.length);
      return Buffer.from(value.bytesValue!).toString('base64');
    default: return null;
  }
}

/** A string attribute as itself, any other value as its JSON text (a topic, source or uid is a string). */
const asText = (value: Plain): string => (typeof value === 'string' ? value : JSON.stringify(value));

/** Drops the fields at their protobuf default (0, "", empty object): absent and default are one in proto3. */
function withoutDefaults(fields: Record<string, Plain>): Record<string, Plain> {
  const kept: Record<string, Plain> = {};
  for (const [key, value] of Object.entries(fields)) {
    const empty = value === 0 || value === '' || value === null || (typeof value === 'object' && Object.keys(value).length === 0);
    if (!empty) kept[key] = value;
  }
  return kept;
}
