import { Worker } from 'node:worker_threads';
import type { Logger } from '../logger.js';
import { StoreOpenError } from '../store/store.js';
import { WRITER_WORKER_ENTRY, type ConsumerCommandRequest, type WriterMessage, type WriterWorkerData } from './writer-protocol.js';

const CRASH_WINDOW_MS = 60_000;

/**
 * A worker's last error as /readyz and publishes show it: a store that cannot open says why; anything
 * else is a bug, whose message may hold internal values, so only its class is named (the log has it all).
 * Errors leave a worker by structured clone: the class is known by its name.
 */
const describeCrash = (error: Error): string =>
  error.name === StoreOpenError.name ? `: ${error.message}` : ` (${error.name}; the log says more)`;
const MAX_CRASHES_IN_WINDOW = 5;
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 5_000;

export interface SupervisorOptions {
  workerData: WriterWorkerData;
  log: Logger;
  onMessage: (message: WriterMessage) => void;
  /** Called when a running worker dies, before any restart. */
  onCrash: (error: Error) => void;
}

/**
 * Keeps exactly one writer alive. A worker that dies is restarted with exponential backoff;
 * one that keeps dying (MAX_CRASHES_IN_WINDOW within CRASH_WINDOW_MS) is left down and the reason kept
 * for /readyz, so a broken disk does not become a hot crash loop. Only bugs count: a worker never dies of
 * a store that is away (it retries), and a restarted one waits for it (waitForStore).
 */
export class WriterSupervisor {
  private worker: Worker | undefined;
  private up = false;
  private stopping = false;
  private crashes: number[] = [];
  private lastError: Error | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  restarts = 0;

  constructor(private readonly options: SupervisorOptions) {}

  /** Starts the first worker; resolves on its `ready`, rejects with its error if it dies before (bad path, bad disk). */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const worker = this.spawn();
      const failed = (error: Error) => reject(error);
      const ready = (message: WriterMessage) => {
        if (message.type !== 'ready') return;
        worker.off('message', ready);
        worker.off('error', failed);
        worker.removeAllListeners('exit');
        worker.on('exit', (code) => this.exited(code));
        resolve();
      };
      worker.once('error', failed);
      worker.once('exit', (code) => reject(this.lastError ?? new Error(`consumer worker exited with code ${code}`)));
      worker.on('message', ready);
    });
  }

  /** Why the consumer is not running, or undefined while it is. */
  downReason(): string | undefined {
    if (this.up) return undefined;
    if (this.stopping) return 'the aggregator is shutting down';
    const last = this.lastError ? describeCrash(this.lastError) : '';
    if (this.worker === undefined && this.restartTimer === undefined) {
      return `consumer worker crashed ${this.crashes.length} times within ${CRASH_WINDOW_MS / 1000} s and is not restarted${last}`;
    }
    return `consumer worker is restarting${last}`;
  }

  /** Hands a command to the running worker; false when none is up to take it. */
  send(request: ConsumerCommandRequest): boolean {
    if (!this.up || this.stopping || !this.worker) return false;
    this.worker.postMessage(request);
    return true;
  }

  /** Waits for the worker to drain the (closed) ring and exit; terminates it after `timeoutMs`. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const worker = this.worker;
    if (!worker) return;
    const timer = setTimeout(() => {
      this.options.log.error({ timeoutMs }, 'consumer did not drain in time; terminating it');
      void worker.terminate();
    }, timeoutMs);
    await new Promise((resolve) => worker.once('exit', resolve));
    clearTimeout(timer);
  }

  private spawn(): Worker {
    const { workerData, log } = this.options;
    // The fault hook is for the first worker only, so a restarted worker shows recovery.
    const data = this.restarts === 0 ? workerData : { ...workerData, waitForStore: true, config: { ...workerData.config, fault: '' } };
    const worker = new Worker(WRITER_WORKER_ENTRY, { workerData: data, name: 'writer' });
    this.worker = worker;
    worker.on('message', (message: WriterMessage) => {
      if (message.type === 'ready') {
        this.up = true;
        this.lastError = undefined;
      }
      this.options.onMessage(message);
    });
    worker.on('error', (error) => {
      this.lastError = error;
      log.error({ err: error }, 'consumer worker failed');
    });
    return worker;
  }

  private exited(code: number): void {
    this.up = false;
    this.worker = undefined;
    if (this.stopping) return;
    const error = this.lastError ?? new Error(`consumer worker exited with code ${code}`);
    this.options.onCrash(error);
    const now = Date.now();
    this.crashes = [...this.crashes.filter((t) => now - t < CRASH_WINDOW_MS), now];
    if (this.crashes.length >= MAX_CRASHES_IN_WINDOW) {
      this.options.log.fatal({ crashes: this.crashes.length }, 'consumer worker keeps crashing; not restarting it');
      return;
    }
    const delay = Math.min(RESTART_MIN_MS * 2 ** (this.crashes.length - 1), RESTART_MAX_MS);
    this.options.log.warn({ code, delay, restarts: this.restarts + 1 }, 'restarting consumer worker');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.restarts++;
      this.spawn().on('exit', (c) => this.exited(c));
    }, delay);
  }
}
