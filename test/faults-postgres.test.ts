import { join } from 'node:path';
import pg from 'pg';
import t, { type Test } from 'tap';
import { freshDatabase, startCluster, type PgCluster } from '../scripts/pg-cluster.js';
import { keyOf, makeEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { query } from './helpers/pg-query.js';
import { startPublishers, type Publishers } from './helpers/publishers.js';
import { readAllEvents, spawnServer, type ServerProcess } from './helpers/server-process.js';

/*
 * PostgreSQL under faults (issue 23), on clusters of the tests' own: a server frozen (SIGSTOP) past the
 * client's timeouts, connections terminated, the server stopped and started, a replica frozen. The replicas
 * run with a short PG_STATEMENT_TIMEOUT_MS so that the faults outlast every timeout within seconds.
 */
const STATEMENT_TIMEOUT_MS = 1_000;
/** The client gives up a second after the server would have. */
const CLIENT_TIMEOUT_MS = STATEMENT_TIMEOUT_MS + 1_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function replica(t: Test, databaseUrl: string, id: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const server = await spawnServer(join(t.testdir(), `${id}-unused.db`), {
    STORE: 'postgres', DATABASE_URL: databaseUrl, REPLICA_ID: id, PG_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS), ...env,
  });
  t.teardown(() => server.kill());
  return server;
}

async function cluster(t: Test): Promise<PgCluster> {
  const started = await startCluster();
  t.teardown(() => started.remove());
  return started;
}

/** Every key the events table holds, purged ones (tombstones) included. */
async function storedKeys(url: string): Promise<Set<string>> {
  const rows = await query<{ topic: string; event_key: string }>(url, 'SELECT topic, event_key FROM events');
  return new Set(rows.map((r) => keyOf({ topic: r.topic, event_id: r.event_key })));
}

/** The acknowledged events missing from the events table: a 200 promised each was committed. */
async function lostAcks(url: string, publishers: Publishers): Promise<number> {
  // Acknowledged before the read began: those acknowledged while it runs may commit after its snapshot.
  const acked = [...publishers.acked];
  const stored = await storedKeys(url);
  return acked.filter((e) => !stored.has(keyOf(e))).length;
}

/** How every fault test ends: each acknowledged event is stored, and the fault never restarted the writer. */
async function nothingLostNoRestart(t: Test, url: string, load: Publishers, server: ServerProcess, why: string): Promise<void> {
  t.equal(await lostAcks(url, load), 0, `every one of ${load.acked.length} acknowledged events is in the events table`);
  t.equal((await server.get('/stats')).consumer.restarts, 0, `no worker restart${why}`);
}

interface Commands {
  /** Commands answered 2xx so far. */
  readonly done: number;
  /** Whether new commands are sent (a command in flight goes on either way). */
  armed: boolean;
  stop(): Promise<void>;
}

/**
 * Durable-consumer commands sent to `server` one after another until stopped: a create, then commits, each
 * an explicit transaction of the writer's that locks the consumer's row and goes on with two statements
 * (the last seq, the update). Answers other than 2xx (503 while PostgreSQL is away) are tried again shortly.
 */
function startCommands(t: Test, server: ServerProcess, name: string): Commands {
  let running = true;
  let done = 0;
  const commands = {
    armed: true,
    get done() {
      return done;
    },
    stop: async () => {
      running = false;
      await loop;
    },
  };
  const loop = (async () => {
    while (running) {
      if (!commands.armed) {
        await sleep(10);
        continue;
      }
      const reply = done === 0
        ? await server.request('PUT', `/consumers/${name}`, { start: 'earliest' }).catch(() => undefined)
        : await server.request('POST', `/consumers/${name}/commit`, { seq: 0 }).catch(() => undefined);
      if (reply && reply.status < 300) done++;
      else await sleep(20);
    }
  })();
  t.teardown(commands.stop);
  return commands;
}

function publishers(t: Test, server: ServerProcess): Publishers {
  const started = startPublishers(() => [server], { count: 3, retry: true });
  t.teardown(started.stop);
  return started;
}

const readyz = (server: ServerProcess) => server.request('GET', '/readyz');

/** The replica answers ready and takes a publish: it recovered by itself. */
async function recovered(server: ServerProcess, what: string, timeout = 15_000): Promise<void> {
  await eventually(async () => (await readyz(server)).status, { what: `${what}: /readyz 200`, timeout, interval: 100, until: (s) => s === 200 });
  const reply = await eventually(() => server.publish(makeEvent({ topic: 'probe' })), {
    what: `${what}: a publish to succeed`, timeout: 5_000, interval: 100, until: (r) => r.status === 200,
  });
  if (reply.status !== 200) throw new Error(`publish answered ${reply.status}`);
}

/**
 * SIGSTOPs the aggregator's backend that sits inside a transaction whose last statement matches `statement`,
 * at a moment it waits there for the client's next statement: the client's next statement hangs.
 */
async function freezeInsideTransaction(admin: pg.Client, statement: string): Promise<number> {
  const pid = await eventually(async () => {
    const { rows: [idle] } = await admin.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'pubsub-aggregator %' AND state = 'idle in transaction'
       AND query ~ $1 LIMIT 1`, [statement]);
    if (!idle) return undefined;
    process.kill(idle.pid, 'SIGSTOP');
    const { rows: [still] } = await admin.query(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'idle in transaction'`, [idle.pid]);
    if (still) return idle.pid;
    process.kill(idle.pid, 'SIGCONT');
    return undefined;
  }, { what: `a backend idle in a transaction after ${statement}`, timeout: 30_000, interval: 1 });
  return pid!;
}

/**
 * How long a hang lasts: past the client's timeout of the statement in flight and of the ROLLBACK queued
 * behind it (old code: the connection then went back to the pool, its transaction open), and over before
 * the next batch gives up on the hung statement it waits behind, or the purge tries again a second later.
 */
const HANG_MS = 2 * CLIENT_TIMEOUT_MS + 400;

/** A replica under publishes, an admin connection to its server, and a check of every 200 against the rows. */
async function hangScene(t: Test, env: Record<string, string> = {}) {
  const postgres = await cluster(t);
  const url = await freshDatabase(postgres.url);
  const server = await replica(t, url, 'a', env);
  const load = publishers(t, server);
  const admin = new pg.Client(postgres.url);
  await admin.connect();
  t.teardown(() => admin.end());
  return {
    postgres, server, load, admin,
    /** Waits out the hang, ends it, and checks that the replica recovered and every acknowledged event is committed. */
    async check(what: string, resume: () => Promise<void>): Promise<void> {
      await sleep(HANG_MS);
      await resume();
      await recovered(server, what);
      t.equal(await lostAcks(url, load), 0, `${what}: every one of ${load.acked.length} acknowledged events so far is committed`);
    },
    async finish(): Promise<void> {
      await load.stop();
      t.ok(load.acked.length > 100, `publishes were acknowledged (${load.acked.length} events)`);
      await nothingLostNoRestart(t, url, load, server, '');
    },
  };
}

t.test('PostgreSQL hung past the client timeouts inside a consumer command, then whole: no acknowledged event lost', async (t) => {
  const scene = await hangScene(t);
  const commands = startCommands(t, scene.server, 'c');
  const pid = await freezeInsideTransaction(scene.admin, 'FROM consumers WHERE name');
  // No command follows the one that hangs: nothing but batches would end a transaction it left open.
  commands.armed = false;
  await scene.check('a consumer command hung', async () => void process.kill(pid, 'SIGCONT'));
  commands.armed = true;
  await sleep(500);
  await scene.postgres.freeze();
  await scene.check('the whole server hung', () => scene.postgres.thaw());
  await commands.stop();
  t.ok(commands.done > 0, `consumer commands ran (${commands.done})`);
  await scene.finish();
});

t.test('PostgreSQL hung past the client timeouts inside a purge step: no acknowledged event lost', async (t) => {
  // Small per-topic limits keep the purge busy beside the batches.
  const scene = await hangScene(t, { RETENTION: 't*=30' });
  const pid = await freezeInsideTransaction(scene.admin, 'pg_try_advisory_xact_lock|topic_purges');
  await scene.check('a purge step hung', async () => void process.kill(pid, 'SIGCONT'));
  await scene.finish();
});

t.test('every aggregator connection terminated in turn: the replica recovers by itself, its worker never crashes', async (t) => {
  const postgres = await cluster(t);
  const url = await freshDatabase(postgres.url);
  const database = new URL(url).pathname.slice(1);
  const server = await replica(t, url, 'a', { RETENTION: 't*=30' });
  const load = publishers(t, server);
  const commands = startCommands(t, server, 'c');
  const backends = () => query<{ pid: number; name: string }>(postgres.url,
    `SELECT pid, application_name AS name FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'pubsub-aggregator%'
     ORDER BY application_name, pid`, [database]);
  const terminated = new Set<string>();
  for (let pass = 0; pass < 3; pass++) {
    for (const { pid, name } of await backends()) {
      await sleep(250);
      await query(postgres.url, 'SELECT pg_terminate_backend($1)', [pid]);
      terminated.add(name.replace(/ a$/, ''));
    }
  }
  await recovered(server, 'after the terminations');
  await Promise.all([load.stop(), commands.stop()]);

  t.ok(['writer', 'reader', 'listener'].every((kind) => terminated.has(`pubsub-aggregator ${kind}`)),
    `writer, reader and listener connections were terminated: ${[...terminated].join(', ')}`);
  t.ok(commands.done > 0, 'consumer commands ran');
  await nothingLostNoRestart(t, url, load, server, ': a lost connection is not a crash');
});

t.test('PostgreSQL stopped and started while consumer commands run: the replica becomes ready again by itself', async (t) => {
  const postgres = await cluster(t);
  const url = await freshDatabase(postgres.url);
  const server = await replica(t, url, 'a', { RETENTION: 't*=30' });
  const load = publishers(t, server);
  const commands = startCommands(t, server, 'c');
  for (let round = 0; round < 2; round++) {
    await sleep(700);
    await postgres.pause();
    const down = await eventually(() => readyz(server), { what: 'not ready while stopped', timeout: 10_000, until: (r) => r.status === 503 });
    t.match(down.body, { statusCode: 503, error: 'Service Unavailable', code: /^(STORE|CONSUMER)_UNAVAILABLE$/, message: String, status: 'not_ready' },
      '/readyz answers in the error shape');
    t.ok(Number(down.headers['retry-after']) >= 1, 'with Retry-After');
    await sleep(3_000);
    await postgres.resume();
    await recovered(server, `round ${round}`);
  }
  await Promise.all([load.stop(), commands.stop()]);

  t.ok(commands.done > 0, 'consumer commands ran');
  await nothingLostNoRestart(t, url, load, server, ' while the database was away');
});

t.test("a frozen replica holding a transaction open does not hold back another replica's readers beyond PG_STATEMENT_TIMEOUT_MS", async (t) => {
  const postgres = await cluster(t);
  const url = await freshDatabase(postgres.url);
  const [a, b] = [await replica(t, url, 'a'), await replica(t, url, 'b')];
  const commands = startCommands(t, b, 'held');
  await eventually(() => commands.done, { what: 'consumer commands on b', timeout: 10_000, until: (n) => n > 4 });
  // Freeze b at a moment its writer sits inside a consumer command's transaction, holding a transaction id.
  const holding = async () => (await query<{ n: string }>(url,
    `SELECT count(*) AS n FROM pg_stat_activity
     WHERE application_name LIKE 'pubsub-aggregator % b' AND state = 'idle in transaction' AND backend_xid IS NOT NULL`))[0]!.n !== '0';
  const pid = b.child.pid!;
  let frozen = false;
  for (let attempt = 0; attempt < 300 && !frozen; attempt++) {
    process.kill(pid, 'SIGSTOP');
    frozen = await holding();
    if (!frozen) {
      process.kill(pid, 'SIGCONT');
      await sleep(5 + (attempt % 7) * 3);
    }
  }
  t.teardown(() => void process.kill(pid, 'SIGCONT'));
  t.ok(frozen, 'replica b is frozen inside a transaction holding an xid');

  const event = makeEvent({ topic: 'fresh' });
  const published = Date.now();
  t.equal((await a.publish(event)).status, 200, 'a publish on replica a is acknowledged');
  const bound = STATEMENT_TIMEOUT_MS + 3_000;
  await eventually(async () => (await a.get('/events?topic=fresh')).length, {
    what: 'the event in /events on replica a while b is frozen', timeout: bound, interval: 50, until: (n) => n === 1,
  });
  t.ok(Date.now() - published < bound, `readable on a after ${Date.now() - published} ms, b still frozen`);

  process.kill(pid, 'SIGCONT');
  await recovered(b, 'replica b thawed');
  await commands.stop();
  t.equal((await readAllEvents(b.get)).filter((e) => e.topic === 'fresh').length, 1, 'b reads it too');
});
