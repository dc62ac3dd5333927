import { statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { loadConfig } from '../src/config.js';
import { parseTokenFile, TokenFileError } from '../src/http/access/token-file.js';
import { makeEvent } from './helpers/events.js';
import { eventually } from './helpers/eventually.js';
import { spawnServer, type ServerProcess } from './helpers/server-process.js';
import { bearer, clientWith, sha256Hex, tokenFileText, writeTokenFile, type TestToken } from './helpers/tokens.js';

const ALPHA: TestToken = { name: 'alpha', secret: 'alpha-secret-1', publish: ['a.*'], read: ['a.*'] };
// The same length as ALPHA's name and secret: swapping one for the other leaves the file's size as it was.
const BRAVO: TestToken = { name: 'bravo', secret: 'bravo-secret-1', publish: ['a.*'], read: ['a.*'] };
const HASH = sha256Hex('x');

t.test('a malformed file is refused naming the file and the line', async (t) => {
  const refused = (text: string) => t.throws(() => parseTokenFile(text, 'tokens.json'), TokenFileError);
  const message = (text: string): string => {
    try {
      parseTokenFile(text, 'tokens.json');
    } catch (error) {
      return (error as Error).message;
    }
    throw new Error('accepted');
  };
  refused('');
  t.match(message('{"tokens": [\n  {"name": "a", "sha256": "' + HASH + '"},\n  {"name": "b" "sha256": "x"}\n]}'), /^tokens\.json: line 3: not JSON/);
  const lines = [
    '{"tokens": [',
    `  {"name": "ok", "sha256": "${HASH}", "read": ["a.*"]},`,
    `  {"name": "short", "sha256": "abc"}`,
    ']}',
  ];
  t.match(message(lines.join('\n')), /^tokens\.json: line 3: \/tokens\/1\/sha256 expected string to match/);
  t.match(message(`{"tokens": [\n{"name": "a", "sha256": "${HASH}"},\n\n  {"name": "a", "sha256": "${sha256Hex('y')}"}]}`),
    /line 4: token 1 repeats the name a/);
  t.match(message(`{"tokens": [{"name": "a", "sha256": "${HASH}"},\n {"name": "b", "sha256": "${HASH.toUpperCase()}"}]}`),
    /line 2: token 1 repeats the sha256/, 'the same hash in another case is the same token');
  t.match(message(`{"tokens": [\n {"name": "a", "sha256": "${HASH}", "pubish": ["x"]}]}`), /line 2: \/tokens\/0\/pubish/, 'a misspelt right is refused, not ignored');
  t.match(message(`{"tokens": [\n {"name": "a b", "sha256": "${HASH}"}]}`), /line 2: \/tokens\/0\/name/);
  t.match(message(`{"tokens": [\n {"name": "a", "sha256": "${HASH}", "read": [""]}]}`), /line 2: \/tokens\/0\/read\/0/);
  t.match(message('[]'), /line 1: \(file\) expected object/);
  t.match(message(`{"tokens": [], "admin": true}`), /line 1: \/admin/);
  const [token] = parseTokenFile(`{"tokens": [{"name": "ops", "sha256": "${HASH.toUpperCase()}", "admin": true}]}`, 'f');
  t.match(token!.grant, { name: 'ops', admin: true });
  t.ok(token!.grant.read.everyTopic && token!.grant.publish.everyTopic, 'an admin publishes and reads every topic');
});

t.test('AUTH_TOKENS_FILE replaces AUTH_TOKEN, AUTH_READ_TOKEN and AUTH_READS: both at once refuse to start', async (t) => {
  for (const env of [{ AUTH_TOKEN: 'x' }, { AUTH_READS: 'true', AUTH_READ_TOKEN: 'y' }]) {
    t.throws(() => loadConfig([], { AUTH_TOKENS_FILE: '/tokens.json', ...env }), { name: 'ConfigError', message: /AUTH_TOKENS_FILE replaces/ });
  }
  t.equal(loadConfig(['--auth-tokens-file', '/etc/tokens.json'], {}).authTokensFile, '/etc/tokens.json', 'the flag');
});

t.test('at start-up a missing or malformed file stops the server with exit 2, naming it', async (t) => {
  const dir = t.testdir();
  const missing = join(dir, 'missing.json');
  await t.rejects(spawnServer(join(dir, 'a.db'), { AUTH_TOKENS_FILE: missing }),
    new RegExp(`exited with 2 before listening: configuration error: AUTH_TOKENS_FILE ${missing}: cannot be read`));
  const malformed = join(dir, 'malformed.json');
  writeFileSync(malformed, `{"tokens": [\n  {"name": "a", "sha256": "nope"}\n]}`);
  await t.rejects(spawnServer(join(dir, 'b.db'), { AUTH_TOKENS_FILE: malformed }),
    new RegExp(`exited with 2 before listening: configuration error: AUTH_TOKENS_FILE ${malformed}: line 2: /tokens/0/sha256`));
});

/** A server on SQLite with a tokens file holding ALPHA. */
async function serverWithTokens(t: Test): Promise<{ server: ServerProcess; file: string }> {
  const dir = t.testdir();
  const file = join(dir, 'tokens.json');
  writeTokenFile(file, [ALPHA]);
  const server = await spawnServer(join(dir, 'aggregator.db'), { AUTH_TOKENS_FILE: file });
  t.teardown(() => server.kill());
  return { server, file };
}

const statusOf = async (server: ServerProcess, token: TestToken) => (await clientWith(server.url, bearer(token.secret)).request('GET', '/events')).status;
const logged = (server: ServerProcess, what: string, until: (line: Record<string, unknown>) => boolean) =>
  eventually(() => server.logs.find(until), { what, timeout: 15_000, interval: 50, until: (line) => line !== undefined });

t.test('the file is re-read when it changes, without a restart', async (t) => {
  const { server, file } = await serverWithTokens(t);
  t.equal(await statusOf(server, ALPHA), 200);
  t.equal(await statusOf(server, BRAVO), 401);
  writeTokenFile(file, [BRAVO, { name: 'extra', secret: 'e', read: ['*'] }]);
  await eventually(() => statusOf(server, BRAVO), { what: 'bravo accepted', timeout: 15_000, interval: 50, until: (status) => status === 200 });
  t.equal(await statusOf(server, ALPHA), 401, 'a token taken out of the file is refused');
  await logged(server, 'the reload logged', (line) => line.msg === 'access tokens reloaded' && line.reason === 'the file changed');
});

t.test('SIGHUP re-reads the file (a change the watcher cannot see: same size, same modification time)', async (t) => {
  const { server, file } = await serverWithTokens(t);
  t.equal(await statusOf(server, ALPHA), 200);
  const { atime, mtime, size } = statSync(file);
  writeFileSync(file, tokenFileText([BRAVO]));
  utimesSync(file, atime, mtime);
  t.equal(statSync(file).size, size, 'the same size');
  server.child.kill('SIGHUP');
  await logged(server, 'the SIGHUP reload logged', (line) => line.msg === 'access tokens reloaded' && line.reason === 'SIGHUP');
  t.equal(await statusOf(server, BRAVO), 200);
  t.equal(await statusOf(server, ALPHA), 401);
});

t.test('a malformed file is refused with its line in the log, and the previous tokens stay in force', async (t) => {
  const { server, file } = await serverWithTokens(t);
  writeFileSync(file, `{"tokens": [\n  {"name": "bravo", "sha256": "${sha256Hex(BRAVO.secret)}"},\n  {"name": "broken"\n]}`);
  const refused = await logged(server, 'the refusal logged', (line) => /access tokens not reloaded/.test(String(line.msg)));
  // The parser stops at the "]" on line 4, where the object of line 3 should have gone on.
  t.match(refused, { level: 50, file, msg: new RegExp(`${file}: line 4: not JSON`) });
  t.equal(await statusOf(server, ALPHA), 200, 'the old token still works');
  t.equal(await statusOf(server, BRAVO), 401, 'the new one is not in force');
  server.child.kill('SIGHUP');
  await eventually(() => server.logs.filter((line) => /access tokens not reloaded/.test(String(line.msg))).length, {
    what: 'SIGHUP refused too', timeout: 15_000, interval: 50, until: (count) => count >= 2,
  });
  t.equal(server.child.exitCode, null, 'the server runs on');
  t.equal(await statusOf(server, ALPHA), 200);
});

t.test('logs name the token, never the token itself', async (t) => {
  const { server } = await serverWithTokens(t);
  const alpha = clientWith(server.url, bearer(ALPHA.secret));
  t.equal((await alpha.publish(makeEvent({ topic: 'b.x' }))).status, 403);
  const refusal = await logged(server, 'the 403 logged', (line) => line.code === 'TOPIC_FORBIDDEN');
  t.match(refusal, { token: 'alpha', url: '/publish' });
  t.notOk(JSON.stringify(server.logs).includes(ALPHA.secret), 'the secret is nowhere in the logs');
});
