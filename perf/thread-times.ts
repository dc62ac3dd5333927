import { readdirSync, readFileSync } from 'node:fs';

/** Linux reports thread CPU time in clock ticks of 10 ms (USER_HZ 100). */
const TICK_US = 10_000;

/** CPU µs each thread of `pid` has used so far, by thread id (the main thread's id is the pid). */
export function threadCpu(pid: number): Map<number, number> {
  const cpu = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`).map(Number)) {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    cpu.set(tid, (Number(fields[11]) + Number(fields[12])) * TICK_US);
  }
  return cpu;
}

/** CPU µs of `pid`'s threads since `before`: the HTTP (main) thread's, the busiest other thread's and the rest's. */
export function cpuSince(pid: number, before: Map<number, number>): { main: number; busiest: number; rest: number } {
  const used = [...threadCpu(pid)].map(([tid, us]) => [tid, us - (before.get(tid) ?? 0)] as const);
  const others = used.filter(([tid]) => tid !== pid).map(([, us]) => us).sort((a, b) => b - a);
  return {
    main: used.find(([tid]) => tid === pid)?.[1] ?? 0,
    busiest: others[0] ?? 0,
    rest: others.slice(1).reduce((a, b) => a + b, 0),
  };
}
