import { createHash } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { sqliteStore } from './helpers/stores.js';
import { prng } from './helpers/events.js';
import { startAggregator, type TestAggregator } from './helpers/in-process.js';
import { attr, decodeOtlpResponse, encodeOtlp, exportOf } from './helpers/otlp.js';

const PROTOBUF = { 'content-type': 'application/x-protobuf' };
const JSON_TYPE = { 'content-type': 'application/json' };
const post = (agg: TestAggregator, payload: string | Buffer, headers: Record<string, string>) =>
  agg.app.inject({ method: 'POST', url: '/v1/logs', headers, payload });

const RESOURCE = [attr('service.name', { stringValue: 'checkout' }), attr('service.instance.id', { stringValue: 'pod-7' })];

/** A record with every kind of field, as protobufjs's fromObject takes it. */
const RECORD = {
  timeUnixNano: '1733212345123456789',
  observedTimeUnixNano: '1733212345200000000',
  severityNumber: 17,
  severityText: 'ERROR',
  body: { kvlistValue: { values: [attr('msg', { stringValue: 'payment failed' })] } },
  attributes: [
    attr('exact', { intValue: '9007199254740993' }),
    attr('small', { intValue: -42 }),
    attr('ratio', { doubleValue: 1.5 }),
    attr('nan', { doubleValue: NaN }),
    attr('raw', { bytesValue: Buffer.from([0, 1, 2, 255]) }),
    attr('nested', { kvlistValue: { values: [attr('a', { arrayValue: { values: [
      { intValue: 1 }, { stringValue: 'x' }, { kvlistValue: { values: [attr('deep', { boolValue: false })] } },
    ] } })] } }),
    attr('empty', {}),
  ],
  droppedAttributesCount: 2,
  flags: 1,
  traceId: Buffer.from('5b8efff798038103d269b633813fc60c', 'hex'),
  spanId: Buffer.from('eee19b7ec3c1b174', 'hex'),
  eventName: 'payment.failed',
};

/** RECORD in OTLP/JSON as a Collector may write it: 64-bit integers as bare numbers, an enum by name, fields from a newer version. */
const RECORD_JSON = `{"timeUnixNano":1733212345123456789,"observedTimeUnixNano":"1733212345200000000",
  "severityNumber":"SEVERITY_NUMBER_ERROR","severityText":"ERROR",
  "body":{"kvlistValue":{"values":[{"key":"msg","value":{"stringValue":"payment failed"}}]}},
  "attributes":[{"key":"exact","value":{"intValue":9007199254740993}},{"key":"small","value":{"intValue":"-42"}},
    {"key":"ratio","value":{"doubleValue":1.5}},{"key":"nan","value":{"doubleValue":"NaN"}},
    {"key":"raw","value":{"bytesValue":"AAEC/w=="}},
    {"key":"nested","value":{"kvlistValue":{"values":[{"key":"a","value":{"arrayValue":{"values":[
      {"intValue":1},{"stringValue":"x"},{"kvlistValue":{"values":[{"key":"deep","value":{"boolValue":false}}]}}]}}}]}}},
    {"key":"empty","value":{}}],
  "droppedAttributesCount":2,"flags":1,"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174",
  "eventName":"payment.failed","fieldFromTheFuture":{"x":[1,2]}}`;

const EXPECTED_PAYLOAD = {
  timeUnixNano: '1733212345123456789',
  observedTimeUnixNano: '1733212345200000000',
  severityNumber: 17,
  severityText: 'ERROR',
  attributes: { exact: '9007199254740993', small: -42, ratio: 1.5, nan: 'NaN', raw: 'AAEC/w==', nested: { a: [1, 'x', { deep: false }] }, empty: null },
  droppedAttributesCount: 2,
  flags: 1,
  traceId: '5b8efff798038103d269b633813fc60c',
  spanId: 'eee19b7ec3c1b174',
  eventName: 'payment.failed',
  resource: { attributes: { 'service.name': 'checkout', 'service.instance.id': 'pod-7' } },
  scope: { name: 'lib', version: '2.0' },
  body: { msg: 'payment failed' },
};

t.test('OTLP protobuf and OTLP/JSON: each record one event, every field exact, the same event from either encoding', async (t) => {
  const agg = await startAggregator(t);
  const withUid = { observedTimeUnixNano: '1733212345000000001', body: { stringValue: '' }, attributes: [attr('log.record.uid', { stringValue: 'uid-1' })] };
  const timeless = { body: { intValue: 0 } };
  const res = await post(agg, encodeOtlp(exportOf(RESOURCE, [RECORD, withUid, timeless])), PROTOBUF);
  t.equal(res.statusCode, 200, res.body);
  t.match(res.headers['content-type'], /^application\/x-protobuf/);
  t.same(decodeOtlpResponse(res.rawPayload), {}, 'an ExportLogsServiceResponse without partialSuccess');

  const [full, uid, noTime] = await agg.get('/events');
  t.same(full, {
    seq: 1, topic: 'checkout', event_id: full.event_id, timestamp: '2024-12-03T07:52:25.123456789Z', source: 'pod-7',
    payload: EXPECTED_PAYLOAD, received_at: full.received_at,
  });
  t.equal(full.event_id, createHash('sha256').update(JSON.stringify(full.payload)).digest('hex'), 'no uid: the SHA-256 of the whole record');
  t.equal(uid.event_id, 'uid-1', 'log.record.uid is the event_id');
  t.equal(uid.timestamp, '2024-12-03T07:52:25.000000001Z', 'observedTimeUnixNano when timeUnixNano is 0');
  t.same(uid.payload.body, '', 'an empty string body is kept');
  t.equal(noTime.timestamp, noTime.received_at, 'neither time: the time received');
  t.same(noTime.payload.body, 0);

  const json = `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}},
    {"key":"service.instance.id","value":{"stringValue":"pod-7"}}]},"somethingNew":true,
    "scopeLogs":[{"scope":{"name":"lib","version":"2.0"},"logRecords":[${RECORD_JSON}]}]}]}`;
  const again = await post(agg, json, JSON_TYPE);
  t.equal(again.statusCode, 200, again.body);
  t.match(again.headers['content-type'], /^application\/json/);
  t.same(again.json(), {});
  const stats = await agg.get('/stats');
  t.equal(stats.duplicate_dropped, 1, 'the OTLP/JSON record is the protobuf one: same payload, same id, a duplicate');
  t.equal(stats.unique_processed, 3);
});

t.test('records that cannot become events are counted in partialSuccess; the others are stored', async (t) => {
  const agg = await startAggregator(t);
  let deep: object = { stringValue: 'bottom' };
  for (let i = 0; i < 150; i++) deep = { kvlistValue: { values: [attr('k', deep)] } };
  const request = {
    resourceLogs: [
      ...exportOf([attr('service.name', { stringValue: 'x'.repeat(300) })], [{ body: { stringValue: 'a' } }, { body: { stringValue: 'b' } }]).resourceLogs,
      ...exportOf(RESOURCE, [
        { body: { stringValue: 'kept' } },
        { body: { stringValue: 'y'.repeat(70 * 1024) } },
        { body: deep },
      ]).resourceLogs,
    ],
  };
  const res = await post(agg, encodeOtlp(request), PROTOBUF);
  t.equal(res.statusCode, 200);
  const { partialSuccess } = decodeOtlpResponse(res.rawPayload);
  t.equal(partialSuccess.rejectedLogRecords, 4);
  t.match(partialSuccess.errorMessage, /^resourceLogs\[0\]\.scopeLogs\[0\]\.logRecords\[0\]: topic /);
  const stored = await agg.get('/events');
  t.same(stored.map((e: any) => e.payload.body), ['kept'], 'the valid record is stored');

  const json = await post(agg, JSON.stringify({
    resourceLogs: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'bad\u0007topic' } }] }, scopeLogs: [{ logRecords: [{}] }] }],
  }), JSON_TYPE);
  t.same(json.json(), { partialSuccess: { rejectedLogRecords: '1', errorMessage: json.json().partialSuccess.errorMessage } });
  t.match(json.json().partialSuccess.errorMessage, /control characters/);
});

t.test('topic and source: OTLP_TOPIC_ATTRIBUTE, OTLP_DEFAULT_TOPIC and their fallbacks', async (t) => {
  const agg = await startAggregator(t, { otlpTopicAttribute: 'deployment.environment', otlpDefaultTopic: 'otel-logs' });
  const request = {
    resourceLogs: [
      ...exportOf([attr('deployment.environment', { stringValue: 'prod' }), attr('service.name', { stringValue: 'svc' })], [{ body: { stringValue: '1' } }]).resourceLogs,
      { scopeLogs: [{ logRecords: [{ body: { stringValue: '2' } }] }] },
    ],
  };
  t.equal((await post(agg, encodeOtlp(request), PROTOBUF)).statusCode, 200);
  const stored = await agg.get('/events');
  t.same(stored.map((e: any) => [e.topic, e.source]), [['prod', 'svc'], ['otel-logs', 'otlp']]);
});

t.test('bad requests get 400, 413 or 415 in the error shape, and nothing is stored', async (t) => {
  const agg = await startAggregator(t, { bodyLimit: 1024 * 1024 });
  const valid = encodeOtlp(exportOf(RESOURCE, [RECORD]));
  const cases: [string, string | Buffer, Record<string, string>, number, string][] = [
    ['text/plain', 'hello', { 'content-type': 'text/plain' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['garbage protobuf', Buffer.alloc(64, 0xff), PROTOBUF, 400, 'INVALID_BODY'],
    ['truncated protobuf', valid.subarray(0, valid.length - 7), PROTOBUF, 400, 'INVALID_BODY'],
    ['a wrong wire type (resourceLogs as a varint)', Buffer.from([0x08, 0x96, 0x01]), PROTOBUF, 400, 'INVALID_BODY'],
    ['wire type 7 (none such)', Buffer.from([0x4f, 0x00]), PROTOBUF, 400, 'INVALID_BODY'],
    ['JSON that does not parse', '{"resourceLogs": [', JSON_TYPE, 400, 'INVALID_JSON'],
    ['a JSON array', '[]', JSON_TYPE, 400, 'INVALID_BODY'],
    ['resourceLogs of the wrong type', '{"resourceLogs": 5}', JSON_TYPE, 400, 'INVALID_BODY'],
    ['a traceId that is not hex', '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"not-hex"}]}]}]}', JSON_TYPE, 400, 'INVALID_BODY'],
    ['an intValue out of range', '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"intValue":"9223372036854775808"}}]}]}]}', JSON_TYPE, 400, 'INVALID_BODY'],
    ['bytesValue that is not base64', '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"bytesValue":"*"}}]}]}]}', JSON_TYPE, 400, 'INVALID_BODY'],
    ['a __proto__ key', '{"resourceLogs":[],"__proto__":{"x":1}}', JSON_TYPE, 400, 'INVALID_JSON'],
    ['past BODY_LIMIT', Buffer.alloc(1024 * 1024 + 1), PROTOBUF, 413, 'BODY_TOO_LARGE'],
    ['a gzip bomb', gzipSync(Buffer.alloc(64 * 1024 * 1024)), { ...PROTOBUF, 'content-encoding': 'gzip' }, 413, 'BODY_TOO_LARGE'],
  ];
  for (const [what, payload, headers, status, code] of cases) {
    const res = await post(agg, payload, headers);
    t.equal(res.statusCode, status, `${what}: ${res.body.slice(0, 200)}`);
    t.match(res.json(), { statusCode: status, code, message: String }, what);
  }
  const wrongWireType = await post(agg, Buffer.from([0x0f, 0x00]), PROTOBUF);
  t.ok([200, 400].includes(wrongWireType.statusCode), `resourceLogs with wire type 7: ${wrongWireType.statusCode}, never a 500`);
  const stats = await agg.get('/stats');
  t.equal(stats.received, 0, 'nothing counted');
  t.same(await agg.get('/events'), [], 'nothing stored');

  const zipped = await post(agg, gzipSync(valid), { ...PROTOBUF, 'content-encoding': 'gzip' });
  t.equal(zipped.statusCode, 200, 'gzip works');
  const empty = await post(agg, Buffer.alloc(0), PROTOBUF);
  t.equal(empty.statusCode, 200, 'an empty request is an empty export: 200');
});

t.test('hostile bodies: a million attributes, nesting past the stack, mutated protobuf; the HTTP thread is never blocked', async (t) => {
  const agg = await startAggregator(t, { bodyLimit: 32 * 1024 * 1024 });
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();

  const million = { attributes: Array.from({ length: 1_000_000 }, (_, i) => attr(`k${i}`, { intValue: i })) };
  const started = performance.now();
  const res = await post(agg, encodeOtlp(exportOf(RESOURCE, [million, { body: { stringValue: 'small' } }])), PROTOBUF);
  const ms = performance.now() - started;
  t.equal(res.statusCode, 200, res.statusCode === 200 ? '200' : res.body);
  t.match(decodeOtlpResponse(res.rawPayload).partialSuccess, { rejectedLogRecords: 1, errorMessage: /payload is more than 65536 bytes of JSON/ });
  t.comment(`a record with 1e6 attributes: ${ms.toFixed(0)} ms`);

  const deepProtobuf = nestedKvlists(50_000);
  const deepRes = await post(agg, deepProtobuf, PROTOBUF);
  t.equal(deepRes.statusCode, 400, 'kvlists nested 50,000 deep in protobuf');
  t.match(deepRes.json(), { code: 'INVALID_BODY' });
  const levels = 50_000;
  const deepJson = `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":${'{"kvlistValue":{"values":[{"key":"k","value":'.repeat(levels)}{}${']}}}'.repeat(levels)}}]}]}]}`;
  const deepJsonRes = await post(agg, deepJson, JSON_TYPE);
  t.equal(deepJsonRes.statusCode, 400, 'and in JSON');

  const random = prng(20);
  const valid = encodeOtlp(exportOf(RESOURCE, [RECORD, { body: { stringValue: 'second' } }]));
  const statuses: Record<number, number> = {};
  for (let i = 0; i < 300; i++) {
    const mutated = Buffer.from(valid.subarray(0, 1 + Math.floor(random() * valid.length)));
    for (let flips = 1 + Math.floor(random() * 4); flips > 0; flips--) mutated[Math.floor(random() * mutated.length)] = Math.floor(random() * 256);
    const answer = await post(agg, mutated, PROTOBUF);
    statuses[answer.statusCode] = (statuses[answer.statusCode] ?? 0) + 1;
  }
  t.comment(`300 mutated bodies: ${JSON.stringify(statuses)}`);
  t.same(Object.keys(statuses).filter((status) => status !== '200' && status !== '400'), [], 'every one 200 or 400');

  delay.disable();
  const maxMs = delay.max / 1e6;
  t.ok(maxMs < 1_000, `the HTTP thread's longest stall: ${maxMs.toFixed(0)} ms (decoding runs on the decoder thread)`);
  t.equal((await agg.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'still serving');
});

t.test('overload: an export that cannot be committed in time gets 503 with Retry-After, as /publish does', async (t) => {
  const agg = await startAggregator(t, { ackTimeoutMs: 200 });
  const letGo = await sqliteStore.blockWrites({ dbPath: agg.config.dbPath, databaseUrl: '' });
  const res = await post(agg, encodeOtlp(exportOf(RESOURCE, [RECORD])), PROTOBUF);
  await letGo();
  t.equal(res.statusCode, 503);
  t.ok(Number(res.headers['retry-after']) >= 1, 'Retry-After');
  t.match(res.json(), { code: 'ACK_TIMEOUT' });
});

/**
 * An export whose one record's body is `depth` kvlists inside each other, written as protobuf from the
 * inside out (the generated encoder recurses, so it cannot write one this deep itself).
 */
function nestedKvlists(depth: number): Buffer {
  const varint = (n: number): number[] => {
    const out: number[] = [];
    for (; n > 127; n >>>= 7) out.push((n & 127) | 128);
    out.push(n);
    return out;
  };
  // Sizes of AnyValue(level i) from the innermost (an empty AnyValue) outwards.
  const field = (size: number) => 1 + varint(size).length + size;
  const sizes = [0];
  for (let i = 1; i <= depth; i++) {
    const keyValue = field(1) + field(sizes[i - 1]!); // key "k", value
    const list = field(keyValue); // KeyValueList.values
    sizes.push(field(list)); // AnyValue.kvlistValue
  }
  const bytes: number[] = [];
  for (let i = depth; i >= 1; i--) {
    const keyValue = field(1) + field(sizes[i - 1]!);
    bytes.push(0x32, ...varint(field(keyValue)), 0x0a, ...varint(keyValue), 0x0a, 1, 0x6b, 0x12, ...varint(sizes[i - 1]!));
  }
  const body = Buffer.from(bytes);
  const record = Buffer.concat([Buffer.from([0x2a, ...varint(body.length)]), body]); // LogRecord.body
  const scope = Buffer.concat([Buffer.from([0x12, ...varint(record.length)]), record]); // ScopeLogs.log_records
  const resource = Buffer.concat([Buffer.from([0x12, ...varint(scope.length)]), scope]); // ResourceLogs.scope_logs
  return Buffer.concat([Buffer.from([0x0a, ...varint(resource.length)]), resource]); // request.resource_logs
}

t.test('with AUTH_TOKEN, /v1/logs needs the publish token like /publish', async (t) => {
  const agg = await startAggregator(t, { authToken: 'secret' });
  const body = encodeOtlp(exportOf(RESOURCE, [RECORD]));
  const refused = await post(agg, body, PROTOBUF);
  t.equal(refused.statusCode, 401);
  t.match(refused.json(), { code: 'UNAUTHORIZED' });
  t.equal((await post(agg, body, { ...PROTOBUF, authorization: 'Bearer secret' })).statusCode, 200);
});
