import otlpRoot from '@opentelemetry/otlp-transformer/build/src/generated/root.js';

/*
 * OTLP requests built with the official protobuf definitions' generated code (the encoder half of what
 * the server decodes with), for bodies the JS SDK cannot make: 64-bit integers past 2^53, chosen ids.
 */

interface Codec {
  fromObject(value: object): object;
  encode(message: object): { finish(): Uint8Array };
  decode(bytes: Uint8Array): object;
  toObject(message: object, options: object): any;
}
const logs = (otlpRoot as any).opentelemetry.proto.collector.logs.v1 as Record<string, Codec>;

/** An ExportLogsServiceRequest in protobuf, from its fields as protobufjs's fromObject takes them. */
export const encodeOtlp = (request: object): Buffer => {
  const type = logs.ExportLogsServiceRequest!;
  return Buffer.from(type.encode(type.fromObject(request)).finish());
};

/** An ExportLogsServiceResponse in protobuf, as plain fields. */
export const decodeOtlpResponse = (bytes: Uint8Array): any =>
  logs.ExportLogsServiceResponse!.toObject(logs.ExportLogsServiceResponse!.decode(bytes), { longs: Number });

/** A string attribute, as KeyValue. */
export const attr = (key: string, value: object) => ({ key, value });

/** One resource with one scope holding `records`. */
export const exportOf = (resourceAttributes: object[], records: object[]) => ({
  resourceLogs: [{ resource: { attributes: resourceAttributes }, scopeLogs: [{ scope: { name: 'lib', version: '2.0' }, logRecords: records }] }],
});
