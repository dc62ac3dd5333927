import { FormatRegistry, Type, type TSchema } from '@sinclair/typebox';

/*
 * The OTLP/JSON mapping of an ExportLogsServiceRequest (opentelemetry-proto, docs/specification.md "JSON
 * Protobuf Encoding"): lowerCamelCase field names, 64-bit integers as decimal strings or numbers, trace and
 * span ids as hex, enums as numbers or names. Unknown fields are allowed: OTLP says receivers ignore them.
 * It checks the types the protobuf runtime's fromObject would otherwise coerce silently, and it is the
 * request body of POST /v1/logs in the OpenAPI document.
 */

const INT64 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };
const UINT64 = { min: 0n, max: 2n ** 64n - 1n };
const inRange = (range: { min: bigint; max: bigint }) => (value: string) =>
  /^-?\d{1,20}$/.test(value) && BigInt(value) >= range.min && BigInt(value) <= range.max;
FormatRegistry.Set('int64', inRange(INT64));
FormatRegistry.Set('uint64', inRange(UINT64));

const int64 = (format: 'int64' | 'uint64', description: string) =>
  Type.Union([
    Type.Integer({ minimum: Number(format === 'int64' ? INT64.min : 0n), maximum: Number(format === 'int64' ? INT64.max : UINT64.max) }),
    Type.String({ format }),
  ], { description });
const uint32 = Type.Integer({ minimum: 0, maximum: 2 ** 32 - 1 });
const hexId = (bytes: number) => Type.String({ pattern: `^([0-9a-fA-F]{${2 * bytes}})?$`, description: `${bytes} bytes as hex` });

/** AnyValue: exactly one of its fields (protobuf keeps the last one set; so does this mapping). */
const AnyValue = Type.Recursive((Self) => Type.Object({
  stringValue: Type.Optional(Type.String()),
  boolValue: Type.Optional(Type.Boolean()),
  intValue: Type.Optional(int64('int64', 'A 64-bit integer')),
  doubleValue: Type.Optional(Type.Union([Type.Number(), Type.Literal('NaN'), Type.Literal('Infinity'), Type.Literal('-Infinity')])),
  arrayValue: Type.Optional(Type.Object({ values: Type.Optional(Type.Array(Self)) })),
  kvlistValue: Type.Optional(Type.Object({ values: Type.Optional(Type.Array(Type.Object({ key: Type.String(), value: Type.Optional(Self) }))) })),
  bytesValue: Type.Optional(Type.String({ contentEncoding: 'base64' })),
}), { $id: 'OtlpAnyValue' });

const Attributes = Type.Array(Type.Object({ key: Type.String(), value: Type.Optional(AnyValue) }));

const LogRecord = Type.Object({
  timeUnixNano: Type.Optional(int64('uint64', 'When the event occurred, ns since the Unix epoch')),
  observedTimeUnixNano: Type.Optional(int64('uint64', 'When the event was observed, ns since the Unix epoch')),
  severityNumber: Type.Optional(Type.Union([Type.Integer({ minimum: -(2 ** 31), maximum: 2 ** 31 - 1 }), Type.String()])),
  severityText: Type.Optional(Type.String()),
  body: Type.Optional(AnyValue),
  attributes: Type.Optional(Attributes),
  droppedAttributesCount: Type.Optional(uint32),
  flags: Type.Optional(uint32),
  traceId: Type.Optional(hexId(16)),
  spanId: Type.Optional(hexId(8)),
  eventName: Type.Optional(Type.String()),
});

const dropped = { attributes: Type.Optional(Attributes), droppedAttributesCount: Type.Optional(uint32) };

/** What POST /v1/logs takes as application/json. */
export const OtlpLogsRequestSchema: TSchema = Type.Object({
  resourceLogs: Type.Optional(Type.Array(Type.Object({
    resource: Type.Optional(Type.Object(dropped)),
    scopeLogs: Type.Optional(Type.Array(Type.Object({
      scope: Type.Optional(Type.Object({ name: Type.Optional(Type.String()), version: Type.Optional(Type.String()), ...dropped })),
      logRecords: Type.Optional(Type.Array(LogRecord)),
      schemaUrl: Type.Optional(Type.String()),
    }))),
    schemaUrl: Type.Optional(Type.String()),
  }))),
}, { description: 'An OTLP ExportLogsServiceRequest (OTLP/JSON); the same message as application/x-protobuf' });

/** What POST /v1/logs answers as application/json (as application/x-protobuf: the same message in protobuf). */
export const OtlpLogsResponseSchema = Type.Object({
  partialSuccess: Type.Optional(Type.Object({
    rejectedLogRecords: Type.String({ description: 'Log records that could not become events (a 64-bit integer, as OTLP/JSON writes one)' }),
    errorMessage: Type.String({ description: 'Why: the first rejected record and its reason' }),
  })),
}, { description: 'Every log record that could become an event is committed', examples: [{}] });

/** The JSON mapping's 64-bit integer fields, which a JSON number cannot always hold exactly. */
export const INT64_FIELDS: ReadonlySet<string> = new Set(['timeUnixNano', 'observedTimeUnixNano', 'intValue']);
