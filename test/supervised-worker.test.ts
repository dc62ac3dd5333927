import { performance } from 'node:perf_hooks';
import t, { type Test } from 'tap';
import { RESTART_BACKOFF, SupervisedWorker, type RestartPolicy } from '../src/lib/supervised-worker.js';
import { createLogger } from '../src/logger.js';
import type { FixtureMessage, FixtureRequest } from './fixtures/crashing-worker.js';
import { eventually } from './helpers/eventually.js';

const ENTRY = new URL('./fixtures/crashing-worker.js', import.meta.url);

class Unavailable extends Error {
  override name = 'Unavailable';
}
class Lost extends Error {
  override name = 'Lost';
  constructor(crash: Error | undefined) {
    super(crash ? `lost: ${crash.message}` : 'lost: stopped');
  }
}

/** A supervised fixture worker (test/fixtures/crashing-worker.ts) that records when one crashed and when the next was spawned. */
function supervise(t: Test, options: { policy?: RestartPolicy; crashOnStart?: (restarts: number) => boolean } = {}) {
  const events: { what: 'crash' | 'spawn'; at: number }[] = [];
  const spawned: number[] = [];
  const messages: string[] = [];
  const worker = new SupervisedWorker<FixtureRequest, FixtureMessage>({
    entry: ENTRY,
    name: 'fixture',
    workerData: (restarts) => {
      spawned.push(restarts);
      events.push({ what: 'spawn', at: performance.now() });
      return { crashOnStart: options.crashOnStart?.(restarts) ?? false };
    },
    policy: options.policy ?? RESTART_BACKOFF,
    log: createLogger('silent', 'test'),
    isReady: (message) => message.type === 'ready',
    replyOf: (message) => message.type === 'answer' ? { id: message.id, value: message.value }
      : message.type === 'failed' ? { id: message.id, error: new Error(message.message) } : undefined,
    onMessage: (message) => messages.push(message.type),
    onCrash: () => events.push({ what: 'crash', at: performance.now() }),
    unavailable: () => new Unavailable('no worker'),
    lost: (crash) => new Lost(crash),
  });
  t.teardown(() => worker.stop());
  const echo = (value: number) => worker.request<number>((id) => ({ id, op: 'echo', value }));
  const crash = () => worker.request((id) => ({ id, op: 'crash' }));
  return { worker, events, spawned, messages, echo, crash };
}

// Each worker thread takes seconds to start under the test runner's loaders: one worker's life is one test.
t.test('a worker\'s life: replies settle their requests; a crash fails those in flight, refuses new ones, restarts with backoff; a stop is final', async (t) => {
  const { worker, events, spawned, messages, echo, crash } = supervise(t);
  await worker.start();
  t.equal(worker.state, 'up');
  const failed = t.rejects(worker.request((id) => ({ id, op: 'fail' })), { message: 'asked to fail' }, 'an error reply rejects its own request');
  t.same(await Promise.all([echo(1), echo(2), echo(3)]), [1, 2, 3], 'each value reply resolves its own request');
  await failed;

  const held = t.rejects(worker.request((id) => ({ id, op: 'hold' })), Lost, 'a request the worker held fails when it dies, it is not left hanging');
  await t.rejects(crash(), { name: 'Lost', message: 'lost: crashed on request' }, 'the crash\'s own error says why');
  await held;
  t.equal(worker.state, 'restarting');
  await t.rejects(echo(1), Unavailable, 'a request while it restarts fails at once');
  await eventually(() => worker.state, { what: 'restart 1', timeout: 30_000, until: (state) => state === 'up' });
  t.equal(worker.lastError, undefined, 'a ready worker forgets its predecessor\'s crash');
  t.equal(await echo(7), 7, 'the restarted worker answers');

  for (let i = 2; i <= 3; i++) {
    await t.rejects(crash(), Lost);
    await eventually(() => worker.state, { what: `restart ${i}`, timeout: 30_000, until: (state) => state === 'up' });
  }
  const waits: number[] = [];
  for (let i = 0; i < events.length - 1; i++) {
    if (events[i]!.what === 'crash' && events[i + 1]!.what === 'spawn') waits.push(events[i + 1]!.at - events[i]!.at);
  }
  t.equal(waits.length, 3, 'each crash was followed by a restart');
  [100, 200, 400].forEach((least, i) => t.ok(waits[i]! >= least - 1, `restart ${i + 1} came after ${Math.round(waits[i]!)} ms, no sooner than ${least}`));
  t.equal(worker.restarts, 3);

  const stopped = t.rejects(worker.request((id) => ({ id, op: 'hold' })), { message: 'lost: stopped' }, 'a stop fails the requests in flight as stopped');
  await worker.stop();
  await stopped;
  t.equal(worker.state, 'stopped');
  t.equal(events.filter((e) => e.what === 'crash').length, 3, 'a stop is no crash');
  t.same(spawned, [0, 1, 2, 3], 'and is not followed by a restart');
  t.same(messages, ['ready', 'ready', 'ready', 'ready'], 'messages other than replies reach onMessage, replies do not');
});

t.test('a crash loop is left down when the policy says so: no hot loop, requests refused', async (t) => {
  // Every restarted worker crashes before it is ready, as one that cannot open a broken disk would.
  const { worker, spawned, crash, echo } = supervise(t, {
    policy: { ...RESTART_BACKOFF, maxCrashes: 2 }, crashOnStart: (restarts) => restarts > 0,
  });
  await worker.start();
  await t.rejects(crash(), Lost);
  await eventually(() => worker.state, { what: 'the supervisor to give up', timeout: 30_000, until: (state) => state === 'given-up' });
  t.equal(worker.recentCrashes, 2);
  t.same(spawned, [0, 1], 'the first worker and one restart, then none: given up means no timer and no thread');
  t.match(worker.lastError, { message: 'crashed on start' }, 'the last crash is kept to say why');
  await t.rejects(echo(1), Unavailable);
});

t.test('a first worker that dies before it is ready fails the start and is not restarted', async (t) => {
  const { worker, spawned } = supervise(t, { crashOnStart: () => true });
  await t.rejects(worker.start(), { message: 'crashed on start' });
  t.equal(worker.state, 'given-up');
  t.same(spawned, [0]);
});
