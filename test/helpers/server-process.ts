import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { clientOver, parseBody, type TestClient } from './client.js';

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

export interface ServerProcess extends TestClient {
  url: string;
  child: ChildProcess;
  /** Every log line the server printed so far, parsed. */
  logs: Record<string, unknown>[];
  /** SIGTERM, resolving with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: no chance to drain or commit. */
  kill(): Promise<void>;
}

/** Spawns `node dist/src/main.js` (on `env.PORT`, else a free port) and resolves once it logs that it is listening. */
export function spawnServer(dbPath: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [MAIN, '--port', env.PORT ?? '0', '--host', '127.0.0.1', '--db-path', dbPath], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Never leave a server behind, even when a test throws before stopping it.
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      process.off('exit', reap);
      resolve(code);
    }),
  );
  return new Promise((resolve, reject) => {
    let pending = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (pending + chunk.toString()).split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'aggregator listening') resolve(server(String(entry.address)));
      }
    });
    void exited.then((code) => reject(new Error(`server exited with ${code} before listening: ${stderr}`)));
  });

  function server(url: string): ServerProcess {
    return {
      url,
      child,
      logs,
      stop: () => (child.kill('SIGTERM'), exited),
      kill: async () => {
        child.kill('SIGKILL');
        await exited;
      },
      ...clientOver(async (method, path, body) => {
        const res = await fetch(`${url}${path}`, {
          method,
          ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
        });
        return { status: res.status, body: parseBody(res.headers.get('content-type'), await res.text()), headers: Object.fromEntries(res.headers) };
      }),
    };
  }
}

/** Reads every stored event by following `after=` pages. */
export async function readAllEvents(get: (path: string) => Promise<any>): Promise<any[]> {
  const all: any[] = [];
  for (let after = 0; ; ) {
    const page: any[] = await get(`/events?after=${after}&limit=10000`);
    if (page.length === 0) return all;
    all.push(...page);
    after = page[page.length - 1].seq;
  }
}
