import otlpRoot from '@opentelemetry/otlp-transformer/build/src/generated/root.js';
import type { PublishedEvent } from '../src/event.js';

/** How a scenario's requests carry their events. */
export type BodyFormat = 'json' | 'ndjson' | 'otlp-protobuf' | 'otlp-json';

interface Format {
  path: string;
  contentType: string;
  encode(events: PublishedEvent[]): string | Buffer;
}

const requestType = (otlpRoot as any).opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest as {
  fromObject(value: object): object;
  encode(message: object): { finish(): Uint8Array };
};

const text = (value: string) => ({ stringValue: value });

/**
 * The same events as an OTLP export (OTLP/JSON field names): one resource per topic (service.name) and
 * source (service.instance.id), each record's id as log.record.uid and its payload fields as attributes,
 * so the aggregator stores one event per record under the same keys as the JSON body would.
 */
function otlpExport(events: PublishedEvent[]) {
  const byResource = new Map<string, PublishedEvent[]>();
  for (const event of events) {
    const key = JSON.stringify([event.topic, event.source]);
    byResource.set(key, [...(byResource.get(key) ?? []), event]);
  }
  return {
    resourceLogs: [...byResource.values()].map((group) => ({
      resource: { attributes: [{ key: 'service.name', value: text(group[0]!.topic) }, { key: 'service.instance.id', value: text(group[0]!.source) }] },
      scopeLogs: [{
        scope: { name: 'perf' },
        logRecords: group.map((event) => ({
          timeUnixNano: `${BigInt(Date.parse(event.timestamp)) * 1_000_000n}`,
          severityNumber: 9,
          attributes: [
            { key: 'log.record.uid', value: text(event.event_id) },
            ...Object.entries(event.payload).map(([key, value]) => ({
              key, value: typeof value === 'number' ? { intValue: value } : text(String(value)),
            })),
          ],
        })),
      }],
    })),
  };
}

export const FORMATS: Record<BodyFormat, Format> = {
  json: { path: '/publish', contentType: 'application/json', encode: (events) => JSON.stringify(events.length === 1 ? events[0] : events) },
  ndjson: { path: '/publish', contentType: 'application/x-ndjson', encode: (events) => events.map((e) => JSON.stringify(e)).join('\n') },
  'otlp-json': { path: '/v1/logs', contentType: 'application/json', encode: (events) => JSON.stringify(otlpExport(events)) },
  'otlp-protobuf': {
    path: '/v1/logs', contentType: 'application/x-protobuf',
    encode: (events) => Buffer.from(requestType.encode(requestType.fromObject(otlpExport(events))).finish()),
  },
};
