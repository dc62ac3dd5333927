import { createServer, type IncomingMessage } from 'node:http';
import { gunzipSync } from 'node:zlib';

/*
 * The in-memory ceiling every perf scenario is measured against in the same run: plain node:http, the
 * same POST /publish bodies and answers, dedup in a Set, nothing validated, queued or stored. What this
 * reaches on a machine is what HTTP and JSON alone cost there; our distance from it is our own overhead.
 * It answers /stats and /readyz just enough for the harness (its queue is always empty).
 */
const seen = new Set<string>();
let unique = 0;
let duplicates = 0;

async function body(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  return (request.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
}

const server = createServer(async (request, response) => {
  const reply = (status: number, value: unknown) => {
    response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
  };
  if (request.method === 'POST' && request.url?.startsWith('/publish')) {
    const parsed = JSON.parse(await body(request)) as { topic: string; event_id: string } | { topic: string; event_id: string }[];
    const events = Array.isArray(parsed) ? parsed : [parsed];
    let fresh = 0;
    for (const { topic, event_id } of events) {
      const key = `${topic}\u0000${event_id}`;
      if (!seen.has(key)) {
        seen.add(key);
        fresh++;
      }
    }
    unique += fresh;
    duplicates += events.length - fresh;
    if (request.url.includes('ack=queued')) reply(202, { accepted: events.length, queued: true });
    else reply(200, { accepted: events.length, unique: fresh, duplicates: events.length - fresh });
  } else if (request.url === '/stats') {
    reply(200, { unique_processed: unique, duplicate_dropped: duplicates, queue_depth: 0, pending_acks: 0, replica: { received: unique + duplicates } });
  } else if (request.url === '/readyz') {
    reply(200, { status: 'ready' });
  } else {
    reply(404, {});
  }
});
server.keepAliveTimeout = 5_000;
server.listen(Number(process.env.PORT), process.env.HOST ?? '127.0.0.1');
process.once('SIGTERM', () => server.close(() => process.exit(0)));
