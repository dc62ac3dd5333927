import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { freePort } from '../scripts/free-port.js';
import { freshDatabase } from '../scripts/pg-cluster.js';
import { eventually } from './helpers/eventually.js';

/*
 * No Docker engine runs on our machines, so this runs the container's own steps outside Docker, read
 * from the Dockerfile and docker-compose.yml themselves: the build script on a clean copy of the repo,
 * the image's CMD and HEALTHCHECK, and the compose publishers' commands against it: single-node on SQLite,
 * and scale-out with two replicas on a real PostgreSQL.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const compose = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8');
const scaleOutCompose = readFileSync(join(ROOT, 'docker-compose.scale-out.yml'), 'utf8');

const jsonArrayAfter = (text: string, pattern: RegExp): string[] => JSON.parse(pattern.exec(text)![1]!) as string[];

function run(command: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(command[0]!, command.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.on('exit', (code) => resolve({ code, stdout }));
  });
}

const healthcheck = jsonArrayAfter(dockerfile, /^HEALTHCHECK .*CMD (\[.*\])$/m);
const imageCmd = jsonArrayAfter(dockerfile, /^CMD (\[.*\])$/m);

/** Starts the image's CMD in `dir` with `env` on a free port and waits until its HEALTHCHECK passes. */
async function startImage(t: Test, dir: string, env: NodeJS.ProcessEnv): Promise<{ url: string; stop(): Promise<number | null> }> {
  const port = String(await freePort());
  const serverEnv = { ...process.env, NODE_ENV: 'production', LOG_LEVEL: 'warn', ...env, PORT: port };
  const server = spawn(imageCmd[0]!, imageCmd.slice(1), { cwd: dir, env: serverEnv, stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => server.once('exit', resolve));
  t.teardown(() => server.kill('SIGKILL'));
  const check = await eventually(() => run(healthcheck, dir, serverEnv), { what: 'the HEALTHCHECK to pass', timeout: 30_000, interval: 200, until: (result) => result.code === 0 });
  t.equal(check.code, 0, 'HEALTHCHECK passes once the server is up');
  return { url: `http://127.0.0.1:${port}`, stop: () => (server.kill('SIGTERM'), exited) };
}

/** Runs a compose file's publisher command with its service URLs pointed at the local servers. */
async function runComposePublisher(t: Test, composeText: string, dir: string, urls: Record<string, string>): Promise<any> {
  const command = jsonArrayAfter(composeText, /command: (\[.*\])/)
    .map((arg) => Object.entries(urls).reduce((text, [service, url]) => text.replaceAll(service, url), arg));
  const published = await run(command, dir, process.env);
  t.equal(published.code, 0, 'the compose publisher finishes');
  const report = JSON.parse(published.stdout) as { acked: number; generated: { unique: number } };
  t.equal(report.acked, 5_000);
  return report;
}

/** The sources of the build stage's COPY lines, each copied to the same path under WORKDIR (checked). */
function buildStageCopies(): string[] {
  const buildStage = dockerfile.split(/^FROM /m)[1]!;
  return [...buildStage.matchAll(/^COPY (.+)$/gm)].flatMap(([, args]) => {
    const paths = args!.trim().split(/\s+/);
    const destination = paths.pop()!;
    for (const source of paths) {
      if (destination !== './' && destination !== `./${source}`) throw new Error(`COPY ${source} ${destination}: not to the same path`);
    }
    return paths;
  });
}

const stats = async (url: string) => (await (await fetch(`${url}/stats`)).json()) as any;

t.test('the image build, CMD, HEALTHCHECK and the compose publishers work outside Docker', { timeout: 600_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aggregator-image-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // The files a clean checkout has, as the Docker build context does (.dockerignore leaves out the rest), of
  // those the build stage's COPY lines take: a file the build needs but the Dockerfile leaves out fails here too.
  const copied = buildStageCopies();
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
    .split('\n').filter((f) => f && existsSync(join(ROOT, f)) && copied.some((source) => f === source || f.startsWith(`${source}/`)));
  for (const file of files) {
    mkdirSync(join(dir, dirname(file)), { recursive: true });
    cpSync(join(ROOT, file), join(dir, file));
  }

  const buildStep = /^RUN (\.\/scripts\/container-build\.sh)$/m.exec(dockerfile)![1]!;
  execFileSync('bash', [buildStep], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  t.ok(existsSync(join(dir, 'dist/src/main.js')), 'compiled');
  t.ok(existsSync(join(dir, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node')), 'native addon built');
  t.notOk(existsSync(join(dir, 'node_modules/typescript')), 'dev dependencies pruned');
  for (const file of [compose, scaleOutCompose]) {
    t.same(jsonArrayAfter(file, /test: (\["CMD", "node".*\])/), ['CMD', ...healthcheck], 'compose uses the image healthcheck');
  }

  t.test('single node: SQLite on the data volume', async (t) => {
    const server = await startImage(t, dir, { DB_PATH: join(dir, 'data', 'aggregator.db') });
    const report = await runComposePublisher(t, compose, dir, { 'http://aggregator:8080': server.url });
    t.match(await stats(server.url), { received: 5_000, unique_processed: report.generated.unique });
    t.equal(await server.stop(), 0, 'docker stop (SIGTERM) exits cleanly');
  });

  t.test('scale-out: two replicas on PostgreSQL, the publisher spreading over both', async (t) => {
    const replicaEnv = /x-aggregator:[\s\S]*?environment: &aggregator-env\n((?: {4}\w+: .*\n)+)/.exec(scaleOutCompose)![1]!;
    const env = Object.fromEntries(replicaEnv.trim().split('\n').map((line) => line.trim().split(': ') as [string, string]));
    t.equal(env.STORE, 'postgres', 'the replicas run the PostgreSQL store');
    const databaseUrl = await freshDatabase();
    const replicas = [];
    for (const id of ['aggregator-1', 'aggregator-2']) {
      t.match(scaleOutCompose, new RegExp(`${id}:[\\s\\S]*?REPLICA_ID: ${id}`), `${id} is a service with its own REPLICA_ID`);
      replicas.push(await startImage(t, dir, { ...env, DATABASE_URL: databaseUrl, REPLICA_ID: id }));
    }
    const report = await runComposePublisher(t, scaleOutCompose, dir, {
      'http://aggregator-1:8080': replicas[0]!.url, 'http://aggregator-2:8080': replicas[1]!.url,
    });
    const [one, two] = await Promise.all(replicas.map((r) => stats(r.url)));
    t.ok(one.replica.received > 0 && two.replica.received > 0, 'both replicas took events');
    t.equal(one.replica.received + two.replica.received, 5_000);
    // Each replica refreshes the store-wide figures from PostgreSQL about once a second.
    const firstUrl = replicas[0]!.url;
    const storeWide = await eventually(() => stats(firstUrl), {
      what: 'store-wide figures on replica 1', timeout: 10_000, interval: 100, until: (s) => s.received === 5_000,
    });
    t.match(storeWide, { received: 5_000, unique_processed: report.generated.unique }, 'store-wide figures');
    for (const replica of replicas) t.equal(await replica.stop(), 0);
  });
});
