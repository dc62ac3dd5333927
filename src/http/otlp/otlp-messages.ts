import otlpRoot from '@opentelemetry/otlp-transformer/build/src/generated/root.js';

/*
 * The OTLP logs messages, decoded and encoded by protobufjs code that the OpenTelemetry project generates
 * from the official opentelemetry-proto definitions and publishes in @opentelemetry/otlp-transformer
 * (docs/ingest.md says why this package and version). Its typings only say `Root`; the interfaces below
 * are the decoded messages' fields that this aggregator reads. The code is generated with null defaults:
 * a scalar field that is not on the wire reads as null, a repeated one as [].
 */

/** A protobufjs 64-bit integer (the `long` package's Long). */
export interface Int64 {
  toString(): string;
}

export interface AnyValue {
  /** Which member of the `value` oneof is set; undefined for an empty AnyValue. */
  value?: 'stringValue' | 'boolValue' | 'intValue' | 'doubleValue' | 'arrayValue' | 'kvlistValue' | 'bytesValue';
  stringValue: string | null;
  boolValue: boolean | null;
  intValue: Int64 | null;
  doubleValue: number | null;
  arrayValue: { values: AnyValue[] } | null;
  kvlistValue: { values: KeyValue[] } | null;
  bytesValue: Uint8Array | null;
}

export interface KeyValue {
  key: string;
  value: AnyValue | null;
}

export interface LogRecord {
  timeUnixNano: Int64 | null;
  observedTimeUnixNano: Int64 | null;
  severityNumber: number | null;
  severityText: string | null;
  body: AnyValue | null;
  attributes: KeyValue[];
  droppedAttributesCount: number | null;
  flags: number | null;
  traceId: Uint8Array | null;
  spanId: Uint8Array | null;
  eventName: string | null;
}

export interface Resource {
  attributes: KeyValue[];
  droppedAttributesCount: number | null;
}

export interface InstrumentationScope {
  name: string | null;
  version: string | null;
  attributes: KeyValue[];
  droppedAttributesCount: number | null;
}

export interface ScopeLogs {
  scope: InstrumentationScope | null;
  logRecords: LogRecord[];
  schemaUrl: string | null;
}

export interface ResourceLogs {
  resource: Resource | null;
  scopeLogs: ScopeLogs[];
  schemaUrl: string | null;
}

export interface LogsRequest {
  resourceLogs: ResourceLogs[];
}

interface MessageType<T> {
  decode(bytes: Uint8Array): T;
  fromObject(value: object): T;
  encode(message: T): { finish(): Uint8Array };
}

interface LogsResponse {
  partialSuccess?: { rejectedLogRecords: number; errorMessage: string };
}

const { v1 } = (otlpRoot as unknown as {
  opentelemetry: { proto: { collector: { logs: { v1: Record<string, MessageType<unknown>> } } } };
}).opentelemetry.proto.collector.logs;
const requestType = v1.ExportLogsServiceRequest as MessageType<LogsRequest>;
const responseType = v1.ExportLogsServiceResponse as MessageType<LogsResponse>;

/** Decodes an application/x-protobuf body; throws (RangeError, Error) when it is not one. */
export const decodeLogsRequest = (bytes: Uint8Array): LogsRequest => requestType.decode(bytes);

/**
 * The message an OTLP/JSON body stands for, once it passed OtlpLogsRequestSchema and its ids were turned
 * from hex into bytes (fromObject reads strings as base64, the protobuf JSON mapping's default).
 */
export const logsRequestFromJson = (value: object): LogsRequest => requestType.fromObject(value);

/** An ExportLogsServiceResponse as protobuf bytes. */
export function encodeLogsResponse(rejected: number, errorMessage: string): Uint8Array {
  const message = rejected > 0 ? { partialSuccess: { rejectedLogRecords: rejected, errorMessage } } : {};
  return responseType.encode(responseType.fromObject(message)).finish();
}
