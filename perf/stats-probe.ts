import { parentPort, workerData } from 'node:worker_threads';

/*
 * Runs in its own thread so the load generator's busy event loop does not inflate what it measures:
 * polls /stats every 20 ms, records how long each answer took, and reports when the server has
 * received and committed every event of the scenario.
 */
export interface ProbeResult {
  settledAt: number;
  latenciesMs: number[];
  final: { received: number; unique_processed: number; duplicate_dropped: number; queue_depth: number };
}

const { url, events } = workerData as { url: string; events: number };
const latenciesMs: number[] = [];
for (;;) {
  const asked = performance.now();
  const final = (await (await fetch(`${url}/stats`)).json()) as ProbeResult['final'];
  latenciesMs.push(performance.now() - asked);
  if (final.received === events && final.queue_depth === 0 && final.unique_processed + final.duplicate_dropped === events) {
    parentPort!.postMessage({ settledAt: performance.timeOrigin + performance.now(), latenciesMs, final } satisfies ProbeResult);
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 20));
}
