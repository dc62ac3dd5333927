import { Worker } from 'node:worker_threads';
import type { Logger } from '../logger.js';
import { InFlight, type Reply } from './in-flight.js';

export interface RestartPolicy {
  /** The wait before restarting after a first crash; it doubles with each further crash within `windowMs`... */
  minMs: number;
  /** ...up to this. */
  maxMs: number;
  /** How long a crash is remembered, for the backoff and for `maxCrashes`. */
  windowMs: number;
  /** Left down after this many crashes within `windowMs`, so a broken disk is no hot crash loop; undefined: restarted forever. */
  maxCrashes?: number | undefined;
}

/** 100 ms after a crash, doubling with each further crash within a minute, never more than 5 s. */
export const RESTART_BACKOFF: RestartPolicy = { minMs: 100, maxMs: 5_000, windowMs: 60_000 };

/**
 * `starting`: the first worker is not ready yet; `restarting`: a crashed one is waiting for its restart or
 * for its successor to be ready; `given-up`: it crashed `maxCrashes` times (or never started) and is left down.
 */
export type SupervisedState = 'starting' | 'up' | 'restarting' | 'given-up' | 'stopped';

export interface SupervisedWorkerOptions<Message> {
  entry: URL;
  /** The thread's name, in logs and errors. */
  name: string;
  /** The data a worker starts with; `restarts` is 0 for the first one. */
  workerData: (restarts: number) => unknown;
  policy: RestartPolicy;
  log: Logger;
  /** Whether a message says the worker is ready for requests. */
  isReady: (message: Message) => boolean;
  /** The reply to a request that a message carries; undefined when it is none (it goes to `onMessage`). */
  replyOf: (message: Message) => Reply | undefined;
  /** Every message that is not a reply, `ready` included. */
  onMessage?: (message: Message) => void;
  /** A worker died unasked: called before its requests fail and before any restart. */
  onCrash?: (crash: Error) => void;
  /** What a request gets when no worker is ready to take it. */
  unavailable: () => Error;
  /** What the requests in flight get when their worker dies: `crash` is why, undefined when it was stopped. */
  lost: (crash: Error | undefined) => Error;
}

/**
 * Keeps one worker thread alive: starts it, restarts it with backoff when it dies (or leaves it down
 * after a crash loop, if the policy says so), and pairs the requests sent to it with their replies by id.
 * A worker that dies takes the requests it had with it: they fail (`lost`) rather than hang, and callers
 * decide whether repeating them is safe. The first worker is not restarted if it dies before it is ready:
 * a bad path or a bad disk stops the start instead of looping.
 */
export class SupervisedWorker<Request, Message> {
  private thread: Worker | undefined;
  private up = false;
  private stopping = false;
  private firstStart: { resolve: () => void; reject: (error: Error) => void } | undefined;
  private crashes: number[] = [];
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly inFlight = new InFlight();
  /** Why the last worker died; forgotten once a worker is ready. */
  lastError: Error | undefined;
  restarts = 0;

  constructor(private readonly options: SupervisedWorkerOptions<Message>) {}

  /** Starts the first worker: resolves once it is ready, rejects with its error if it dies before. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.firstStart = { resolve, reject };
      this.spawn();
    });
  }

  get state(): SupervisedState {
    if (this.up) return 'up';
    if (this.stopping) return 'stopped';
    if (this.firstStart) return 'starting';
    return this.thread === undefined && this.restartTimer === undefined ? 'given-up' : 'restarting';
  }

  /** Crashes within the policy's window. */
  get recentCrashes(): number {
    return this.crashes.length;
  }

  /**
   * Sends the request `build` makes with the id it is given, and resolves with its reply's value, which the
   * caller's protocol says is a `T`. Fails at once (`unavailable`) when no worker is ready.
   */
  request<T>(build: (id: number) => Request): Promise<T> {
    return this.inFlight.send<T>((id) => this.post(build(id)), this.options.unavailable);
  }

  /** Lets the worker end by itself within `graceMs` (0: at once), then terminates it; it is not restarted. */
  async stop(graceMs = 0): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const thread = this.thread;
    if (!thread) return;
    // Not events.once: it rejects on 'error', and a worker that fails while it stops (a store it cannot commit to) still exits.
    const exited = new Promise((resolve) => thread.once('exit', resolve));
    const timer = setTimeout(() => {
      if (graceMs > 0) this.options.log.error({ graceMs }, `${this.options.name} did not end in time; terminating it`);
      void thread.terminate();
    }, graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Posts to the worker; false when none is ready to take it. */
  private post(message: Request): boolean {
    if (!this.up || this.stopping || !this.thread) return false;
    this.thread.postMessage(message);
    return true;
  }

  private spawn(): void {
    const { entry, name, workerData, log } = this.options;
    const thread = new Worker(entry, { workerData: workerData(this.restarts), name });
    this.thread = thread;
    thread.on('message', (message: Message) => this.received(message));
    thread.on('error', (error) => {
      this.lastError = error;
      log.error({ err: error }, `${name} failed`);
    });
    thread.on('exit', (code) => this.exited(code));
  }

  private received(message: Message): void {
    const { isReady, replyOf, onMessage } = this.options;
    if (isReady(message)) {
      this.up = true;
      this.lastError = undefined;
      this.firstStart?.resolve();
      this.firstStart = undefined;
    }
    const reply = replyOf(message);
    if (reply) this.inFlight.settle(reply);
    else onMessage?.(message);
  }

  private exited(code: number): void {
    const { name, policy, log, onCrash, lost } = this.options;
    const crash = this.lastError ?? new Error(`${name} exited with code ${code}`);
    this.up = false;
    this.thread = undefined;
    if (this.firstStart) {
      this.firstStart.reject(crash);
      this.firstStart = undefined;
      return;
    }
    if (this.stopping) {
      this.inFlight.failAll(lost(undefined));
      return;
    }
    onCrash?.(crash);
    this.inFlight.failAll(lost(crash));
    const now = Date.now();
    this.crashes = [...this.crashes.filter((t) => now - t < policy.windowMs), now];
    if (policy.maxCrashes !== undefined && this.crashes.length >= policy.maxCrashes) {
      log.fatal({ crashes: this.crashes.length }, `${name} keeps crashing; not restarting it`);
      return;
    }
    const delay = Math.min(policy.minMs * 2 ** (this.crashes.length - 1), policy.maxMs);
    log.warn({ code, delay, restarts: this.restarts + 1 }, `restarting ${name}`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.restarts++;
      this.spawn();
    }, delay);
  }
}
