import { parentPort, workerData } from 'node:worker_threads';

/*
 * Runs in its own thread so the load generator's busy event loop does not inflate what it measures:
 * polls /stats of every replica every 20 ms, records how long each answer took, and reports when the
 * replicas together have taken every event of the scenario and committed all they queued.
 */
export interface ProbeResult {
  settledAt: number;
  latenciesMs: number[];
}

interface ReplicaStats {
  queue_depth: number;
  pending_acks: number;
  replica: { received: number };
}

const { urls, events } = workerData as { urls: string[]; events: number };
const latenciesMs: number[] = [];
for (;;) {
  const answers = await Promise.all(urls.map(async (url) => {
    const asked = performance.now();
    const stats = (await (await fetch(`${url}/stats`)).json()) as ReplicaStats;
    latenciesMs.push(performance.now() - asked);
    return stats;
  }));
  const received = answers.reduce((sum, s) => sum + s.replica.received, 0);
  if (received === events && answers.every((s) => s.queue_depth === 0 && s.pending_acks === 0)) {
    parentPort!.postMessage({ settledAt: performance.timeOrigin + performance.now(), latenciesMs } satisfies ProbeResult);
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 20));
}
