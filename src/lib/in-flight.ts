/** An answer to a request: its value, or why it failed. `id` is the request's. */
export type Reply = { id: number; value: unknown } | { id: number; error: Error };

/**
 * Requests sent to another thread and waiting for their reply, each known by the id it travelled with.
 * Ids start at 1 and never repeat, so a late reply to a failed request settles nothing.
 */
export class InFlight {
  private readonly waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  private nextId = 1;

  /**
   * Gives the request an id and hands it to `send`, which posts it or returns false when nothing can take
   * it: then the request fails at once with `refused()`. The reply's value is taken to be a `T`: the
   * protocol that pairs requests with replies is the caller's.
   */
  send<T>(send: (id: number) => boolean, refused: () => Error): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      if (!send(id)) {
        reject(refused());
        return;
      }
      this.waiting.set(id, { resolve: resolve as (value: unknown) => void, reject });
    });
  }

  settle(reply: Reply): void {
    const waiter = this.waiting.get(reply.id);
    this.waiting.delete(reply.id);
    if ('error' in reply) waiter?.reject(reply.error);
    else waiter?.resolve(reply.value);
  }

  /** Fails every request still waiting: the thread that would reply is gone. */
  failAll(error: Error): void {
    for (const { reject } of this.waiting.values()) reject(error);
    this.waiting.clear();
  }
}
