import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { freePort } from '../scripts/free-port.js';
import { eventually } from './helpers/eventually.js';
import { readAllEvents, spawnServer, type ServerProcess } from './helpers/server-process.js';

const LOGGER = fileURLToPath(new URL('./fixtures/pino-logger.js', import.meta.url));

/** Runs the fixture service; `logged` is how many lines it reported having logged so far. */
function runLogger(url: string, lines: number, intervalMs: number, exit: 'stdin' | 'process.exit') {
  const child = spawn(process.execPath, [LOGGER, url, String(lines), String(intervalMs), exit], { stdio: ['pipe', 'pipe', 'pipe'] });
  const progress = { logged: 0, stderr: '' };
  child.stdout.on('data', (chunk: Buffer) => {
    for (const match of chunk.toString().matchAll(/logged (\d+)/g)) progress.logged = Number(match[1]);
  });
  child.stderr.on('data', (chunk: Buffer) => (progress.stderr += chunk.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { progress, exited, exit: () => child.stdin.end() };
}

/** Each line's `n`, in store order: lines 0..count-1 must each be there exactly once. */
async function storedLines(t: Test, server: ServerProcess, count: number) {
  const events = await readAllEvents((path) => server.get(path));
  const ns = events.map((e) => e.payload.n as number).sort((a, b) => a - b);
  t.same(ns, Array.from({ length: count }, (_, n) => n), `lines 0..${count - 1}, each stored exactly once`);
  t.match(events[0], { topic: 'app.logs', payload: { level: 30, msg: 'order placed' } });
  t.equal(events[0].timestamp, new Date(events[0].payload.time).toISOString(), "the line's time is the event's timestamp");
}

t.test('a service that logs 5,000 lines and calls process.exit(): every line stored exactly once', async (t) => {
  const server = await spawnServer(join(t.testdir(), 'aggregator.db'));
  t.teardown(() => server.kill());
  const logger = runLogger(server.url, 5_000, 0, 'process.exit');
  t.equal(await logger.exited, 0);
  t.equal(logger.progress.stderr, '', 'no line failed');
  await storedLines(t, server, 5_000);
});

t.test('the server is killed and restarted while the service logs: the lines logged meanwhile are retried and stored once', async (t) => {
  const dbPath = join(t.testdir(), 'aggregator.db');
  const env = { PORT: String(await freePort()) };
  let server = await spawnServer(dbPath, env);
  t.teardown(() => server.kill());
  const logger = runLogger(server.url, 1_500, 2, 'stdin');
  await eventually(() => logger.progress.logged, { what: 'the first lines logged', timeout: 20_000, until: (n) => n >= 300 });
  await server.kill();
  const loggedAtKill = logger.progress.logged;
  await eventually(() => logger.progress.logged, { what: 'lines logged while the server is down', timeout: 20_000, until: (n) => n >= loggedAtKill + 200 });
  server = await spawnServer(dbPath, env);
  await eventually(() => logger.progress.logged, { what: 'every line logged', timeout: 30_000, until: (n) => n === 1_500 });
  // A natural exit (the event loop empties), the server back: pino ends the transport, which flushes.
  logger.exit();
  t.equal(await logger.exited, 0);
  t.equal(logger.progress.stderr, '', 'no line failed');
  t.ok(loggedAtKill < 1_500, `the kill came mid-way (${loggedAtKill} lines logged)`);
  await storedLines(t, server, 1_500);
});
