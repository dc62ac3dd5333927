import type { Logger } from '../logger.js';
import { RESTART_BACKOFF, SupervisedWorker } from '../lib/supervised-worker.js';
import type { ConsumerCommand, ConsumerOutcome } from '../store/consumers.js';
import { StoreError, StoreOpenError } from '../store/store.js';
import { PublishError } from './errors.js';
import { WRITER_WORKER_ENTRY, type ConsumerCommandRequest, type WriterMessage, type WriterWorkerData } from './writer-protocol.js';

const CRASH_WINDOW_MS = RESTART_BACKOFF.windowMs;
const MAX_CRASHES_IN_WINDOW = 5;

/**
 * A worker's last error as /readyz and publishes show it: a store that cannot open says why; anything
 * else is a bug, whose message may hold internal values, so only its class is named (the log has it all).
 * Errors leave a worker by structured clone: the class is known by its name.
 */
const describeCrash = (error: Error): string =>
  error.name === StoreOpenError.name ? `: ${error.message}` : ` (${error.name}; the log says more)`;

export interface SupervisorOptions {
  workerData: WriterWorkerData;
  log: Logger;
  /** Every message but the answers to consumer commands, which `consumerCommand` resolves. */
  onMessage: (message: WriterMessage) => void;
  /** Called when a running worker dies, before any restart. */
  onCrash: (error: Error) => void;
}

/**
 * Keeps exactly one writer alive (SupervisedWorker): one that dies is restarted with backoff; one that
 * keeps dying (MAX_CRASHES_IN_WINDOW within CRASH_WINDOW_MS) is left down and the reason kept for /readyz.
 * Only bugs count: a worker never dies of a store that is away (it retries), and a restarted one waits
 * for it (waitForStore).
 */
export class WriterSupervisor {
  private readonly worker: SupervisedWorker<ConsumerCommandRequest, WriterMessage>;

  constructor(options: SupervisorOptions) {
    const { workerData } = options;
    this.worker = new SupervisedWorker({
      entry: WRITER_WORKER_ENTRY,
      name: 'writer',
      // The fault hook is for the first worker only, so a restarted worker shows recovery.
      workerData: (restarts) => restarts === 0 ? workerData
        : { ...workerData, waitForStore: true, config: { ...workerData.config, fault: '' } },
      policy: { ...RESTART_BACKOFF, maxCrashes: MAX_CRASHES_IN_WINDOW },
      log: options.log,
      isReady: (message) => message.type === 'ready',
      replyOf: (message) => message.type !== 'consumer-result' ? undefined
        : 'outcome' in message ? { id: message.id, value: message.outcome }
          : { id: message.id, error: new StoreError(message.error.message, message.error.code) },
      onMessage: options.onMessage,
      onCrash: options.onCrash,
      unavailable: () => new PublishError('CONSUMER_UNAVAILABLE', 'the consumer worker is not running; retry'),
      // A command in flight may or may not have been applied; each is safe to repeat (create and commit are
      // idempotent, a repeated delete answers "unknown").
      lost: (crash) => crash ? new PublishError('CONSUMER_UNAVAILABLE', 'consumer worker crashed; retry')
        : new PublishError('SHUTTING_DOWN', 'the aggregator is shutting down'),
    });
  }

  get restarts(): number {
    return this.worker.restarts;
  }

  /** Starts the first worker; resolves on its `ready`, rejects with its error if it dies before (bad path, bad disk). */
  start(): Promise<void> {
    return this.worker.start();
  }

  /** Why the consumer is not running, or undefined while it is. */
  downReason(): string | undefined {
    const { state, lastError, recentCrashes } = this.worker;
    const last = lastError ? describeCrash(lastError) : '';
    switch (state) {
      case 'up':
        return undefined;
      case 'stopped':
        return 'the aggregator is shutting down';
      case 'given-up':
        return `consumer worker crashed ${recentCrashes} times within ${CRASH_WINDOW_MS / 1000} s and is not restarted${last}`;
      default:
        return `consumer worker is restarting${last}`;
    }
  }

  /** Applies a durable-consumer command in the writer, the store's one writer. */
  consumerCommand(command: ConsumerCommand): Promise<ConsumerOutcome> {
    return this.worker.request<ConsumerOutcome>((id) => ({ type: 'consumer-command', id, command }));
  }

  /** Waits for the worker to drain the (closed) ring and exit; terminates it after `timeoutMs`. */
  stop(timeoutMs: number): Promise<void> {
    return this.worker.stop(timeoutMs);
  }
}
