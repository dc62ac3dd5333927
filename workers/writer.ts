import { setTimeout as sleep } from 'node:timers/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../src/logger.js';
import {
  packAcks, type CommittedMessage, type ConsumerCommandRequest, type ConsumerCommandResult, type WriterMessage, type WriterWorkerData,
} from '../src/pipeline/writer-protocol.js';
import { NOBODY_WAITS, readEvent, type QueuedEvent } from '../src/ring/event-codec.js';
import { RingConsumer, type RingMark } from '../src/ring/ring.js';
import { openEventStore } from '../src/store/open.js';
import { OutOfTurnError, StoreConflictError, StoreError, type EventStore, type RingCheckpoint, type StoreSnapshot } from '../src/store/store.js';
import { faultInjector } from './faults.js';

/*
 * The writer: the ring's only reader and the store's only writer. It drains the ring in batches,
 * commits each batch in one transaction together with the ring position it reached, and only then
 * releases the ring space and reports the commit, so a record leaves the ring only once it is durable.
 *
 * A store may take several commits at once (store.commitsInFlight, PostgreSQL's PG_WRITE_CONNECTIONS):
 * full batches go to its lanes in use (store.lanesInUse) in ring order, round robin, each lane taking its
 * next batch once its last one committed (a batch that is not full waits for every commit in flight, see
 * consume). Their statements run side by side, but each one becomes durable only after the batch before it
 * (CommitOrder.after), so batches commit in ring order, as with one lane: a crash loses only a tail
 * (?ack=queued), and the position each batch stores covers every record before it. Should a batch roll
 * back, the one after it rolls back too and tries again once it committed.
 */

const IDLE_WAIT_MS = 100;
/** Upkeep (purging, sealing the dedup index) runs in slices of at most this much work... */
const UPKEEP_SLICE_MS = 10;
/** ...with at least this many times as long for batches in between while events wait, so publishes keep most of the thread... */
const UPKEEP_SHARE = 3;
/** ...and, when nothing is pending, once this often (retention's next round, figures for /stats). */
const UPKEEP_EVERY_MS = 1_000;
/** How often a writer of a shared store re-reads the store-wide counters and changed topics. */
const SNAPSHOT_EVERY_MS = 1_000;
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 5_000;
/** Batch numbers (CommitOrder.turn) wrap here: they must fit PostgreSQL's int. */
const TURNS = 2 ** 31;

const { ring: ringBuffer, epoch, config, waitForStore } = workerData as WriterWorkerData;
const log = createLogger(config.logLevel, 'writer');
const fault = faultInjector(config.fault);
const post = (message: WriterMessage): void => parentPort!.postMessage(message);

let lastSnapshot = performance.now();
let nextUpkeep = 0;
const { store, checkpoint, initial } = await openStore();
const ring = new RingConsumer(ringBuffer);

// Records up to the stored checkpoint of this same ring were committed by a predecessor that died
// before releasing them: pass over them instead of counting them again as duplicates.
let skippedRecords = 0;
if (checkpoint?.epoch === epoch) {
  skippedRecords = ring.skipTo(checkpoint.position);
  ring.release();
}
post({ type: 'ready', counters: initial.counters, topicEvents: [...initial.topicEvents], skippedRecords });
log.debug({ skippedRecords, counters: initial.counters }, 'writer ready');

/** A batch handed to a lane, in ring order, until it is reported. */
interface InFlight {
  turn: number;
  lane: number;
  end: RingMark;
  /** Resolves once it committed; rejects if it never will (the writer ends). */
  committed: Promise<void>;
  /** Its report, once it committed. */
  report?: CommittedMessage;
  /** The keys it stores, while in flight (see heldBack). */
  keys: string[];
}
const inFlight: InFlight[] = [];
/** Keys of the batches in flight, and in how many each. */
const keysInFlight = new Map<string, number>();
/** Each lane's last batch: settled once it committed and was reported, or failed for good. */
const lanes: Promise<void>[] = Array.from({ length: store.commitsInFlight }, () => Promise.resolve());
/** Batches handed out so far: the next one's turn, and its lane among those in use. */
let handedOut = 0;
let lanesInUse = store.lanesInUse;
/** A lane's commit that failed for good: the writer ends with it. */
let failure: unknown;

// Consumer commands run one after another: on SQLite every store call is synchronous, so a message
// handler never runs inside a batch transaction; on PostgreSQL they run on the store's connection for
// transactions, beside the batches' (see PostgresEventStore).
let commands = Promise.resolve();
const onCommand = (request: ConsumerCommandRequest): void => {
  commands = commands.then(async () => post(await applyCommand(request)));
};
parentPort!.on('message', onCommand);

await consume();
parentPort!.off('message', onCommand);
await commands;
await store.close();
log.debug('writer drained and closed the store');

/**
 * Opens the store and reads what the start needs. A restarted worker waits, with backoff, for a store that
 * is away (PostgreSQL unreachable), meanwhile not ready; any other failure ends the worker.
 */
async function openStore(): Promise<{ store: EventStore; checkpoint: RingCheckpoint | undefined; initial: StoreSnapshot }> {
  for (let delay = RETRY_MIN_MS; ; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
    let store: EventStore | undefined;
    try {
      store = await openEventStore(config, log);
      return { store, checkpoint: await store.checkpoint(), initial: await store.snapshot() };
    } catch (error) {
      await Promise.resolve(store?.close()).catch(() => undefined);
      if (!waitForStore || !(error instanceof StoreError && error.code === 'PG_UNAVAILABLE')) throw error;
      log.warn({ err: error, retryInMs: delay }, 'the store is away; waiting for it before starting');
      await sleep(delay);
    }
  }
}

/**
 * Replicas sharing the store change its totals and topics too: refresh them (the topics that changed
 * only) about once a second, busy
 * or idle. This also probes the shared server, so an idle replica notices it going away (and coming back)
 * without a publish.
 */
async function refreshSnapshot(): Promise<void> {
  if (!store.shared || performance.now() - lastSnapshot < SNAPSHOT_EVERY_MS) return;
  lastSnapshot = performance.now();
  try {
    const { counters, topicEvents } = await store.changes();
    post({ type: 'snapshot', counters, topicEvents: [...topicEvents] });
  } catch (error) {
    if (!(error instanceof StoreError)) throw error;
    log.warn({ err: error }, 'the store did not answer; still trying');
    post({ type: 'store-error', message: error.message, code: error.code, retryInMs: SNAPSHOT_EVERY_MS });
  }
}

async function applyCommand({ id, command }: ConsumerCommandRequest): Promise<ConsumerCommandResult> {
  try {
    return { type: 'consumer-result', id, outcome: await store.applyConsumerCommand(command) };
  } catch (error) {
    if (!(error instanceof StoreError)) throw error;
    log.warn({ err: error, command: command.kind }, 'consumer command failed');
    return { type: 'consumer-result', id, error: { message: error.message, code: error.code } };
  }
}

/**
 * Runs a slice of the store's upkeep when one is due, and reports it. Returns how long the writer may
 * wait for events before the next slice is due. Upkeep runs with no batch in flight (see PostgresEventStore).
 */
async function upkeep(): Promise<number> {
  const now = performance.now();
  if (now < nextUpkeep) return Math.min(IDLE_WAIT_MS, nextUpkeep - now);
  await drain();
  try {
    const { pending, index, lastPurge, topicEvents } = await store.upkeep(UPKEEP_SLICE_MS);
    const took = performance.now() - now;
    // Pending upkeep yields to waiting events; with none waiting it goes on at once.
    nextUpkeep = performance.now() + (!pending ? UPKEEP_EVERY_MS : ring.hasNext() ? UPKEEP_SHARE * took : 0);
    post({ type: 'upkeep', index, lastPurge, topicEvents: [...topicEvents] });
  } catch (error) {
    if (!(error instanceof StoreError)) throw error;
    log.warn({ err: error }, 'store upkeep failed; trying again later');
    nextUpkeep = performance.now() + UPKEEP_EVERY_MS;
  }
  return Math.max(0, Math.min(IDLE_WAIT_MS, nextUpkeep - performance.now()));
}

async function consume(): Promise<void> {
  for (;;) {
    if (failure !== undefined) throw failure;
    await ring.waitForData(await upkeep());
    await refreshSnapshot();
    if (!ring.hasNext()) {
      if (ring.isClosed()) return drain();
      continue;
    }
    const batch: QueuedEvent[] = [];
    fill(batch);
    if (config.batchLingerMs > 0) await linger(batch);
    // Only a full batch (a backlog) goes out beside the commits in flight. A smaller one would wait for
    // them all the same (its turn), one small commit after another: it waits for them here instead, taking
    // in what arrived meanwhile, so small publishes share one commit (seed with 4 lanes took 35 s, not 5).
    if (batch.length < config.batchMax && inFlight.length > 0) {
      await drain();
      fill(batch);
    }
    await handOut(batch);
  }
}

function fill(batch: QueuedEvent[]): void {
  for (let span; batch.length < config.batchMax && (span = ring.next()) !== undefined; ) {
    batch.push(readEvent(ring.data, span));
  }
}

/** Lets a batch that is not full wait up to batchLingerMs for more events: fewer, larger commits. */
async function linger(batch: QueuedEvent[]): Promise<void> {
  const deadline = performance.now() + config.batchLingerMs;
  for (let left; batch.length < config.batchMax && (left = deadline - performance.now()) > 0 && !ring.isClosed(); ) {
    await ring.waitForData(left);
    fill(batch);
  }
}

/** Hands the batch to the next lane once that lane's last batch committed. */
async function handOut(batch: QueuedEvent[]): Promise<void> {
  if (store.lanesInUse !== lanesInUse) {
    lanesInUse = store.lanesInUse;
    log.info({ lanesInUse, lanes: lanes.length }, lanesInUse < lanes.length
      ? 'another replica commits to the store too: one batch in flight at a time'
      : 'no other replica commits lately: batches in flight on every writer connection');
  }
  const lane = handedOut % lanesInUse;
  const turn = handedOut++ % TURNS;
  await lanes[lane];
  if (failure !== undefined) throw failure;
  const previous = inFlight.at(-1);
  let settle!: { resolve: () => void; reject: (error: unknown) => void };
  const committed = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  committed.catch(() => undefined); // the writer ends on `failure`; nobody else needs to hear it
  const held = heldBack(batch);
  const entry: InFlight = { turn, lane, end: ring.mark, committed, keys: [] };
  // One lane never has two batches in flight (SQLite's only mode): no key can be in an earlier one.
  if (lanes.length > 1) {
    for (let i = 0; i < batch.length; i++) if (!held?.[i]) entry.keys.push(keyOf(batch[i]!));
    for (const key of entry.keys) keysInFlight.set(key, (keysInFlight.get(key) ?? 0) + 1);
  }
  inFlight.push(entry);
  lanes[lane] = commit(batch, held, entry, previous).then((report) => {
    entry.report = report;
    settle.resolve();
    reportInOrder();
  }, (error: unknown) => {
    failure ??= error;
    settle.reject(error);
  });
}

/** Releases and reports the committed batches at the head, in ring order. */
function reportInOrder(): void {
  for (let report; (report = inFlight[0]?.report) !== undefined; ) {
    const { end, keys } = inFlight.shift()!;
    for (const key of keys) {
      const left = keysInFlight.get(key)! - 1;
      if (left === 0) keysInFlight.delete(key);
      else keysInFlight.set(key, left);
    }
    // Space first, report second: once a publish is acknowledged, its records no longer count as queued.
    ring.release(end);
    report.reportedAt = performance.timeOrigin + performance.now();
    post(report);
  }
}

/** Waits until every batch handed out has committed and been reported. */
async function drain(): Promise<void> {
  await Promise.all(lanes);
  if (failure !== undefined) throw failure;
}

/**
 * Commits the batch, after `previous` (see CommitOrder), retrying store errors (disk full, I/O) with
 * backoff; the batch is never split or dropped.
 */
async function commit(batch: QueuedEvent[], held: Uint8Array | undefined, entry: InFlight, previous: InFlight | undefined):
  Promise<CommittedMessage> {
  const sent = held ? batch.filter((_, i) => !held[i]) : batch;
  for (let delay = RETRY_MIN_MS; ; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
    try {
      const after = previous && !previous.report ? { turn: previous.turn, lane: previous.lane, position: previous.end.position } : undefined;
      fault('before-commit');
      const started = performance.now();
      const result = await store.commitBatch(sent, { epoch, position: entry.end.position },
        { lane: entry.lane, turn: entry.turn, after, heldBack: batch.length - sent.length });
      const commitMs = performance.now() - started;
      fault('after-commit');
      return summarize(batch, held ? spread(result.isNew, held) : result.isNew, {
        type: 'committed', acks: packAcks([]), records: batch.length, counters: result.counters,
        topicEvents: [...result.topicEvents], seqRange: result.seqRange, commitMs, reportedAt: 0,
      });
    } catch (error) {
      if (!(error instanceof StoreError)) throw error;
      // The batch before it failed: try again once that one is in.
      if (error instanceof OutOfTurnError) {
        await previous!.committed;
        continue;
      }
      // The store broke a deadlock with another replica's commit by aborting this one: nothing was stored,
      // and the store is fine, so publishes are not refused; the batch goes again at once.
      if (error instanceof StoreConflictError) {
        log.warn({ err: error, batchSize: batch.length }, 'commit aborted to break a conflict; committing again');
        continue;
      }
      // Stopping with a failing store: give up rather than hang the shutdown. These events were never
      // acknowledged as committed (their requests got 503), so at-least-once publishers still have them.
      if (ring.isClosed()) {
        log.error({ err: error, uncommitted: batch.length + ring.depth() }, 'stopping with events the store would not take');
        throw error;
      }
      log.error({ err: error, batchSize: batch.length, retryInMs: delay }, 'commit failed; retrying the batch');
      post({ type: 'store-error', message: error.message, code: error.code, retryInMs: delay });
      await sleep(delay);
    }
  }
}

/**
 * Which events of the batch an earlier batch in flight stores already (same topic and event_id): they are
 * duplicates, and are not sent, so two batches of this writer never wait for each other over a key.
 * Undefined when there are none.
 */
function heldBack(batch: readonly QueuedEvent[]): Uint8Array | undefined {
  if (keysInFlight.size === 0) return undefined;
  let held: Uint8Array | undefined;
  for (let i = 0; i < batch.length; i++) {
    if (keysInFlight.has(keyOf(batch[i]!))) (held ??= new Uint8Array(batch.length))[i] = 1;
  }
  return held;
}

/** The batch's isNew from that of the events sent: the held-back ones are duplicates. */
function spread(sentIsNew: Uint8Array, held: Uint8Array): Uint8Array {
  const isNew = new Uint8Array(held.length);
  for (let i = 0, j = 0; i < held.length; i++) if (!held[i]) isNew[i] = sentIsNew[j++]!;
  return isNew;
}

/** An event's dedup key, injective: the topic's length, then the topic and the event_id. */
function keyOf(event: QueuedEvent): string {
  return `${event.topic.length}:${event.topic}${event.eventId}`;
}

/** Adds per-request unique/duplicate counts to the message and logs each dropped duplicate. */
function summarize(batch: QueuedEvent[], isNew: Uint8Array, message: CommittedMessage): CommittedMessage {
  const perRequest = new Map<number, [unique: number, duplicates: number]>();
  for (let i = 0; i < batch.length; i++) {
    const event = batch[i]!;
    if (!isNew[i]) log.info({ topic: event.topic, event_id: event.eventId, source: event.source }, 'duplicate dropped');
    if (event.requestId === NOBODY_WAITS) continue;
    let counts = perRequest.get(event.requestId);
    if (!counts) perRequest.set(event.requestId, (counts = [0, 0]));
    counts[isNew[i] ? 0 : 1]++;
  }
  message.acks = packAcks(Array.from(perRequest, ([requestId, [unique, duplicates]]) => ({ requestId, unique, duplicates })));
  return message;
}
