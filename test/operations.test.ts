import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import t from 'tap';
import { makeEvent } from './helpers/events.js';
import { startAggregator } from './helpers/in-process.js';
import { requires } from './helpers/requires.js';

t.test('/metrics: Prometheus text with counters, queue, batches, commit latency, HTTP durations; no topic labels', async (t) => {
  const agg = await startAggregator(t);
  const event = makeEvent({ topic: 'secret.topic.name' });
  await agg.publish([event, event, makeEvent({ topic: 'secret.topic.name' })]);
  await agg.publish({ nope: true });
  const res = await agg.app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const text = res.body;
  const replica = `replica="${agg.config.replicaId}"`;
  /** The value of `name`, whose labels besides the replica are `labels` (`reason="invalid"`). */
  const value = (name: string, labels = '') => {
    // prom-client puts the default label first or last depending on the metric.
    const series = labels ? [`${name}{${labels},${replica}}`, `${name}{${replica},${labels}}`] : [`${name}{${replica}}`];
    const line = text.split('\n').find((l) => series.some((s) => l.startsWith(`${s} `)));
    return Number(line?.slice(line.lastIndexOf(' ') + 1));
  };
  t.equal(value('aggregator_events_received_total'), 3);
  t.equal(value('aggregator_replica_events_received_total'), 3);
  t.equal(value('aggregator_events_unique_total'), 2);
  t.equal(value('aggregator_events_duplicate_total'), 1);
  t.equal(value('aggregator_requests_rejected_total', 'reason="invalid"'), 1);
  t.equal(value('aggregator_queue_depth'), 0);
  t.equal(value('aggregator_consumer_ready'), 1);
  t.equal(value('aggregator_topics'), 1);
  t.ok(value('aggregator_batch_size_count') >= 1, 'batch sizes observed');
  t.ok(value('aggregator_commit_duration_seconds_count') >= 1, 'commit latency observed');
  t.equal(value('aggregator_commit_report_delay_seconds_count'), value('aggregator_commit_duration_seconds_count'), 'each commit\'s report delay too');
  t.ok(value('aggregator_commit_report_delay_seconds_sum') < value('aggregator_commit_report_delay_seconds_count'), 'under a second each');
  t.ok(value('aggregator_store_disk_bytes') > 0, 'store size on disk');
  t.equal(value('aggregator_http_request_duration_seconds_count', 'method="POST",route="/publish",status_code="200"'), 1);
  t.match(text, /aggregator_process_resident_memory_bytes/, 'process metrics');
  t.notMatch(text, /secret\.topic\.name/, 'topics are never labels');
});

t.test('/metrics: the HTTP thread\'s event-loop delay since the previous scrape, p50, p99 and max', async (t) => {
  const agg = await startAggregator(t);
  const scrape = async () => (await agg.app.inject({ method: 'GET', url: '/metrics' })).body;
  const delay = (text: string, which: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`aggregator_event_loop_delay_${which}_seconds{`));
    return Number(line?.slice(line.lastIndexOf(' ') + 1));
  };
  await scrape();
  // Hold the event loop for 60 ms: the sample after it is that late.
  await new Promise((resolve) => setTimeout(resolve, 20));
  for (const until = performance.now() + 60; performance.now() < until; );
  await new Promise((resolve) => setTimeout(resolve, 20));
  const blocked = await scrape();
  t.ok(delay(blocked, 'max') >= 0.04, `the stall shows as the maximum (${delay(blocked, 'max')} s)`);
  t.ok(delay(blocked, 'p50') < 0.04, `and not as the median (${delay(blocked, 'p50')} s)`);
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.ok(delay(await scrape(), 'max') < 0.04, 'each scrape starts afresh');
});

const PROMTOOL = process.env.PROMTOOL_PATH ?? '/usr/bin/promtool';

t.test('/metrics passes promtool check metrics (Debian prometheus package; .ci/run installs it)', async (t) => {
  if (!requires(t, existsSync(PROMTOOL), `promtool at ${PROMTOOL}`)) return;
  const agg = await startAggregator(t);
  await agg.publish(makeEvent());
  const text = (await agg.app.inject({ method: 'GET', url: '/metrics' })).body;
  const problems = await new Promise<string>((resolve) => {
    const child = execFile(PROMTOOL, ['check', 'metrics'], (_error, stdout, stderr) => resolve(`${stdout}${stderr}`.trim()));
    child.stdin!.end(text);
  });
  t.equal(problems, '', 'no lint problems');
});

t.test('/stats counts events per topic', async (t) => {
  const agg = await startAggregator(t);
  await agg.publish([makeEvent({ topic: 'a' }), makeEvent({ topic: 'a' }), makeEvent({ topic: 'b' })]);
  t.same((await agg.get('/stats')).topic_events, { a: 2, b: 1 });
});

t.test('/docs: an OpenAPI 3 document from the TypeBox schemas, with examples, and its UI', async (t) => {
  const agg = await startAggregator(t);
  const doc = await agg.get('/docs/json');
  t.match(doc.openapi, /^3\./);
  t.ok(['/publish', '/events', '/stats', '/healthz', '/readyz', '/metrics'].every((p) => p in doc.paths), 'every route');
  const publish = doc.paths['/publish'].post;
  const body = publish.requestBody.content['application/json'];
  t.same(Object.keys(body.examples).sort(), ['array', 'envelope', 'single'], 'the three body shapes');
  t.same(Object.keys(publish.responses).sort(), ['200', '202', '400', '401', '403', '413', '415', '429', '503']);
  t.same(doc.security, [{ bearer: [] }], 'every route is documented behind the bearer scheme…');
  t.match(doc.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer', description: /AUTH_TOKENS_FILE/ });
  t.same([doc.paths['/healthz'].get.security, doc.paths['/readyz'].get.security], [[], []], '…but the health checks');
  t.match(publish.responses['400'].content['application/json'].example, { errors: [{ index: 1, field: 'timestamp' }] }, 'error examples');
  t.same(body.schema.anyOf[0].required, ['topic', 'event_id', 'timestamp', 'source', 'payload']);
  t.equal(body.schema.anyOf[0].additionalProperties, false, 'unknown fields are documented as refused');
  for (const path of ['/events', '/events/stream', '/consumers/{name}/events']) {
    const names = doc.paths[path].get.parameters.map((p: { name: string }) => p.name);
    t.ok(['since', 'until'].every((name) => names.includes(name)), `${path} documents since= and until=`);
  }
  t.ok(doc.paths['/events'].get.parameters.some((p: { name: string }) => p.name === 'after'));
  t.ok(doc.paths['/events'].get.responses['200'].headers['X-Range-End'].description, 'the range end header is documented');
  t.ok(doc.paths['/consumers/{name}/events'].get.responses['200'].content['application/json'].schema.properties.end, 'and the page\'s end');
  t.ok(doc.paths['/events'].get.responses['200'].headers['X-Purged-Through'].description, 'the purge header is documented');
  for (const path of ['/events', '/events/stream', '/consumers/{name}/events']) {
    t.same(Object.keys(doc.paths[path].get.responses['200'].headers).slice(0, 2), ['Content-Encoding', 'Vary'], `${path}: gzip's headers are documented`);
  }
  t.ok(doc.paths['/stats'].get.responses['200'].content['application/json'].schema.properties.topic_details, '/stats has its schema');
  const consumer = (path: string, method: string, status: string) => doc.paths[path][method].responses[status].content['application/json'].schema;
  t.ok(consumer('/consumers/{name}', 'put', '201').properties.last_commit_at, 'consumer answers have their schema');
  t.ok(consumer('/consumers/{name}', 'get', '200').properties.lag);
  t.ok(consumer('/consumers', 'get', '200').items.properties.oldest_unconsumed_at);
  t.ok(consumer('/consumers/{name}/commit', 'post', '200').properties.position);
  const ui = await agg.app.inject({ method: 'GET', url: '/docs/' });
  t.equal(ui.statusCode, 200);
  t.match(ui.body, /swagger/i);
});

t.test('non-JSON bodies get 415', async (t) => {
  const agg = await startAggregator(t);
  const res = await agg.app.inject({ method: 'POST', url: '/publish', payload: 'hello', headers: { 'content-type': 'text/plain' } });
  t.equal(res.statusCode, 415);
});
