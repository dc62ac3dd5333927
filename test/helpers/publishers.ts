import { makeEvent, prng, type TestEvent } from './events.js';
import type { ServerProcess } from './server-process.js';

export interface Publishers {
  /** Every event a publish acknowledged (200), in no particular order. */
  acked: TestEvent[];
  /** Stops publishing; resolves once every publisher finished its last request. */
  stop(): Promise<void>;
}

/**
 * `count` concurrent publishers, each sending batches of 1-40 events (seeded, topics t0-t2) round-robin to
 * `servers()` until stopped. A publish that does not answer 200 fails the run, unless `retry` is set: then
 * (a server restarting) it is tried again shortly with a new batch.
 */
export function startPublishers(servers: () => ServerProcess[], { count = 6, retry = false } = {}): Publishers {
  const acked: TestEvent[] = [];
  let running = true;
  const done = Promise.all(Array.from({ length: count }, async (_, p) => {
    const random = prng(p + 1);
    for (let n = 0; running; n++) {
      const targets = servers();
      const batch = Array.from({ length: 1 + Math.floor(random() * 40) }, () => makeEvent({ topic: `t${p % 3}` }));
      const res = await targets[(p + n) % targets.length]!.publish(batch).catch((error: Error) => ({ status: 0, body: error.message }));
      if (res.status === 200) acked.push(...batch);
      else if (retry) await new Promise((resolve) => setTimeout(resolve, 50));
      else throw new Error(`publish answered ${res.status}: ${JSON.stringify(res.body)}`);
    }
  }));
  return {
    acked,
    stop: async () => {
      running = false;
      await done;
    },
  };
}
