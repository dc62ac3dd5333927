import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OTLPLogExporter as JsonExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as ProtoExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import t, { type Test } from 'tap';
import { readAllEvents, spawnServer, type ServerProcess } from '../helpers/server-process.js';
import type { TestStore } from '../helpers/stores.js';

type Exporter = 'otlp-http (JSON)' | 'otlp-proto (protobuf, gzip)';
const EXPORTERS: Exporter[] = ['otlp-http (JSON)', 'otlp-proto (protobuf, gzip)'];

/** 2^62: an integer attribute past 2^53 that the JS SDK can still hold exactly (it has only doubles). */
const BIG = 2 ** 62;
/** A fixed moment, and a nanosecond part no millisecond clock could produce. */
const SECONDS = 1_764_000_000;
const nanosOf = (i: number) => 123_456_789 + i;

async function serverOn(t: Test, store: TestStore): Promise<ServerProcess> {
  const settings = await store.fresh(t);
  const server = await spawnServer(settings.dbPath, store.env(settings));
  t.teardown(() => server.kill());
  return server;
}

/**
 * The OpenTelemetry JS SDK as an application runs it: a LoggerProvider whose BatchLogRecordProcessor
 * exports batches of up to 512 records through the real OTLP/HTTP exporter, with its own retries.
 */
async function emitThroughSdk(url: string, exporter: Exporter, service: string, count: number): Promise<void> {
  const options = { url: `${url}/v1/logs`, timeoutMillis: 20_000 };
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ 'service.name': service, 'service.instance.id': `${service}-pod-1` }),
    processors: [new BatchLogRecordProcessor({
      exporter: exporter === 'otlp-http (JSON)' ? new JsonExporter(options) : new ProtoExporter({ ...options, compression: 'gzip' as never }),
      maxExportBatchSize: 512, maxQueueSize: count, scheduledDelayMillis: 20, exportTimeoutMillis: 60_000,
    })],
  });
  const logger = provider.getLogger('checkout', '1.2.3');
  for (let i = 0; i < count; i++) {
    logger.emit({
      timestamp: [SECONDS + i, nanosOf(i)],
      severityNumber: 9,
      severityText: 'INFO',
      body: `order ${i} placed`,
      attributes: { seq: i, big: BIG, raw: new Uint8Array([i % 256, 0, 255]), nested: { cart: { items: [i, 'sku'], paid: true } } },
    });
  }
  await provider.forceFlush();
  await provider.shutdown();
}

/** What record `i` must read back as, field for field. */
function expectedEvent(service: string, i: number) {
  return {
    topic: service,
    source: `${service}-pod-1`,
    timestamp: `${new Date((SECONDS + i) * 1000).toISOString().slice(0, 19)}.${String(nanosOf(i)).padStart(9, '0')}Z`,
    payload: {
      timeUnixNano: `${BigInt(SECONDS + i) * 1_000_000_000n + BigInt(nanosOf(i))}`,
      severityNumber: 9,
      severityText: 'INFO',
      body: `order ${i} placed`,
      attributes: { seq: i, big: '4611686018427387904', raw: Buffer.from([i % 256, 0, 255]).toString('base64'), nested: { cart: { items: [i, 'sku'], paid: true } } },
      scope: { name: 'checkout', version: '1.2.3' },
    },
  };
}

/** Each record stored once, every field exact. */
async function checkStored(t: Test, server: ServerProcess, service: string, count: number): Promise<void> {
  const stored = (await readAllEvents((path) => server.get(path))).filter((e) => e.topic === service);
  const bySeq = new Map<number, any[]>();
  for (const event of stored) bySeq.set(event.payload.attributes.seq, [...(bySeq.get(event.payload.attributes.seq) ?? []), event]);
  t.equal(stored.length, count, `${service}: ${count} records, ${stored.length} events`);
  t.equal(bySeq.size, count, 'each record stored once');
  let mismatches = 0;
  for (let i = 0; i < count; i++) {
    const [event] = bySeq.get(i) ?? [];
    const expected = expectedEvent(service, i);
    const { observedTimeUnixNano, resource, ...payload } = event?.payload ?? {};
    const same = event && event.topic === expected.topic && event.source === expected.source && event.timestamp === expected.timestamp &&
      /^[0-9a-f]{64}$/.test(event.event_id) && typeof observedTimeUnixNano === 'string' &&
      resource?.attributes?.['service.name'] === service && canonical(payload) === canonical(expected.payload);
    if (!same && mismatches++ === 0) t.same(event, expected, `record ${i} reads back exactly`);
  }
  t.equal(mismatches, 0, 'every record reads back exactly: 64-bit integer, bytes, nested kvlists, nanoseconds');
}

/** JSON text with every object's keys sorted: two values are equal iff their canonical texts are. */
function canonical(value: unknown): string {
  if (typeof value !== 'object' || value === null) return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  return `{${Object.keys(value).sort().map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`).join(',')}}`;
}

/**
 * A fault proxy in front of the server: of every three exports it answers the first 503 (Retry-After: 0)
 * without passing it on, passes the second on and drops the connection once the server has answered
 * (the events are committed, the exporter never hears so), and passes the third on untouched.
 */
async function faultProxy(t: Test, target: string): Promise<{ url: string; refused: number; dropped: number }> {
  const upstream = new URL(target);
  const counts = { url: '', refused: 0, dropped: 0 };
  let exports = 0;
  const proxy: Server = createServer((req, res) => {
    const turn = exports++ % 3;
    if (turn === 0) {
      counts.refused++;
      req.resume();
      res.writeHead(503, { 'retry-after': '0', 'content-type': 'application/json' }).end('{}');
      return;
    }
    const forward = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('end', () => {
        if (turn === 1 && answer.statusCode === 200) {
          counts.dropped++;
          req.socket.destroy();
          return;
        }
        res.writeHead(answer.statusCode!, answer.headers).end(Buffer.concat(chunks));
      });
    });
    forward.on('error', () => req.socket.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
  counts.url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  return counts;
}

/** The OpenTelemetry JS SDK against a spawned server on this kind of store. */
export function otlpSdkSuite(store: TestStore): void {
  t.test('the OpenTelemetry SDK: thousands of records through both OTLP exporters, each stored once and exact', async (t) => {
    const server = await serverOn(t, store);
    const count = 3_000;
    for (const [n, exporter] of EXPORTERS.entries()) {
      const service = `sdk-${n}`;
      await emitThroughSdk(server.url, exporter, service, count);
      await checkStored(t, server, service, count);
    }
    const stats = await server.get('/stats');
    t.equal(stats.unique_processed, 2 * count);
    t.equal(stats.duplicate_dropped, 0, 'no retries were needed');
  });

  t.test('the exporters\' own retries after 503s and dropped connections arrive as duplicates; each record stays once', async (t) => {
    const server = await serverOn(t, store);
    const count = 1_500;
    for (const [n, exporter] of EXPORTERS.entries()) {
      const proxy = await faultProxy(t, server.url);
      const service = `faulty-${n}`;
      await emitThroughSdk(proxy.url, exporter, service, count);
      t.ok(proxy.refused > 0 && proxy.dropped > 0, `${exporter}: ${proxy.refused} exports refused, ${proxy.dropped} answers dropped`);
      await checkStored(t, server, service, count);
    }
    const stats = await server.get('/stats');
    t.equal(stats.unique_processed, 2 * count);
    t.ok(stats.duplicate_dropped > 0, `the retried batches were dropped as duplicates (${stats.duplicate_dropped})`);
  });
}
