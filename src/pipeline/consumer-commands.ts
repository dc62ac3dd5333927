import type { ConsumerCommand, ConsumerOutcome } from '../store/consumers.js';
import { StoreError } from '../store/store.js';
import type { ConsumerCommandRequest, ConsumerCommandResult } from './writer-protocol.js';
import { PublishError } from './errors.js';

/**
 * Durable-consumer commands in flight to the writer, each waiting for the result with its id.
 * A worker that dies or stops fails them all: such a command may or may not have been applied, and each
 * is safe to repeat (create and commit are idempotent, a repeated delete answers "unknown").
 */
export class ConsumerCommands {
  private readonly waiting = new Map<number, { resolve: (outcome: ConsumerOutcome) => void; reject: (error: Error) => void }>();
  private nextId = 1;

  /** `send` hands a request to the running worker, or returns false when there is none. */
  constructor(private readonly send: (request: ConsumerCommandRequest) => boolean) {}

  run(command: ConsumerCommand): Promise<ConsumerOutcome> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (!this.send({ type: 'consumer-command', id, command })) {
        reject(new PublishError('CONSUMER_UNAVAILABLE', 'the consumer worker is not running; retry'));
        return;
      }
      this.waiting.set(id, { resolve, reject });
    });
  }

  settle(result: ConsumerCommandResult): void {
    const waiter = this.waiting.get(result.id);
    this.waiting.delete(result.id);
    if ('outcome' in result) waiter?.resolve(result.outcome);
    else waiter?.reject(new StoreError(result.error.message, result.error.code));
  }

  failAll(error: Error): void {
    for (const { reject } of this.waiting.values()) reject(error);
    this.waiting.clear();
  }
}
