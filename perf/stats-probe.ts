import { parentPort, workerData } from 'node:worker_threads';

/*
 * Runs in its own thread so the load generator's busy event loop does not inflate what it measures:
 * polls /stats of every replica every 20 ms, records how long each answer took, and reports when the
 * replicas together have taken `events` events since they started and committed all they queued. It also
 * notes the longest last_commit_ms it saw: a sample (a commit between two polls goes unseen).
 */
export interface ProbeResult {
  settledAt: number;
  latenciesMs: number[];
  maxCommitMs: number;
}

interface ReplicaStats {
  queue_depth: number;
  pending_acks: number;
  replica: { received: number };
  /** Absent on the ceiling server. */
  consumer?: { last_commit_ms: number };
}

const { urls, events } = workerData as { urls: string[]; events: number };
const latenciesMs: number[] = [];
let maxCommitMs = 0;
for (;;) {
  const answers = await Promise.all(urls.map(async (url) => {
    const asked = performance.now();
    const stats = (await (await fetch(`${url}/stats`)).json()) as ReplicaStats;
    latenciesMs.push(performance.now() - asked);
    maxCommitMs = Math.max(maxCommitMs, stats.consumer?.last_commit_ms ?? 0);
    return stats;
  }));
  const received = answers.reduce((sum, s) => sum + s.replica.received, 0);
  if (received === events && answers.every((s) => s.queue_depth === 0 && s.pending_acks === 0)) {
    parentPort!.postMessage({ settledAt: performance.timeOrigin + performance.now(), latenciesMs, maxCommitMs } satisfies ProbeResult);
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 20));
}
