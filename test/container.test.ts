import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

/*
 * No Docker engine runs on our machines, so this runs the container's own steps outside Docker, read
 * from the Dockerfile and docker-compose.yml themselves: the build script on a clean copy of the repo,
 * the image's CMD and HEALTHCHECK, and the compose publisher's command against it.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const compose = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8');

const jsonArrayAfter = (text: string, pattern: RegExp): string[] => JSON.parse(pattern.exec(text)![1]!) as string[];

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function run(command: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(command[0]!, command.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.on('exit', (code) => resolve({ code, stdout }));
  });
}

t.test('the image build, CMD, HEALTHCHECK and the compose publisher work outside Docker', { timeout: 600_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aggregator-image-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // The files a clean checkout has, as the Docker build context does (.dockerignore leaves out the rest).
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
    .split('\n').filter((f) => f && existsSync(join(ROOT, f)));
  for (const file of files) {
    mkdirSync(join(dir, dirname(file)), { recursive: true });
    cpSync(join(ROOT, file), join(dir, file));
  }

  const buildStep = /^RUN (\.\/scripts\/container-build\.sh)$/m.exec(dockerfile)![1]!;
  execFileSync('bash', [buildStep], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  t.ok(existsSync(join(dir, 'dist/src/main.js')), 'compiled');
  t.ok(existsSync(join(dir, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node')), 'native addon built');
  t.notOk(existsSync(join(dir, 'node_modules/typescript')), 'dev dependencies pruned');

  const port = String(await freePort());
  const env = { ...process.env, NODE_ENV: 'production', PORT: port, DB_PATH: join(dir, 'data', 'aggregator.db'), LOG_LEVEL: 'warn' };
  const cmd = jsonArrayAfter(dockerfile, /^CMD (\[.*\])$/m);
  const server = spawn(cmd[0]!, cmd.slice(1), { cwd: dir, env, stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => server.once('exit', resolve));
  t.teardown(() => server.kill('SIGKILL'));

  const healthcheck = jsonArrayAfter(dockerfile, /^HEALTHCHECK .*CMD (\[.*\])$/m);
  t.same(jsonArrayAfter(compose, /test: (\[.*\])/), ['CMD', ...healthcheck], 'compose uses the image healthcheck');
  let healthy = false;
  for (const deadline = Date.now() + 30_000; !healthy && Date.now() < deadline; ) {
    healthy = (await run(healthcheck, dir, env)).code === 0;
    if (!healthy) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.ok(healthy, 'HEALTHCHECK passes once the server is up');

  const publisher = jsonArrayAfter(compose, /command: (\[.*\])/).map((arg) => arg.replace('http://aggregator:8080', `http://127.0.0.1:${port}`));
  const published = await run(publisher, dir, env);
  t.equal(published.code, 0, 'the compose publisher finishes');
  const report = JSON.parse(published.stdout) as { acked: number; unique: number; generated: { unique: number } };
  t.equal(report.acked, 5_000);
  const stats = (await (await fetch(`http://127.0.0.1:${port}/stats`)).json()) as { received: number; unique_processed: number };
  t.match(stats, { received: 5_000, unique_processed: report.generated.unique });

  server.kill('SIGTERM');
  t.equal(await exited, 0, 'docker stop (SIGTERM) exits cleanly');
});
