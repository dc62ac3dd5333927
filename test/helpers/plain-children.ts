import { syncBuiltinESMExports } from 'node:module';
import workerThreads, { type WorkerOptions } from 'node:worker_threads';

/**
 * Child processes and worker threads of the suite start as a user's would: without tap's process-info
 * loader, which tap adds for coverage bookkeeping the suite turns off ("disable-coverage"). tap's `node-arg`
 * setting (package.json) imports this module into every test process first.
 *
 * Processes (spawned servers, the container build's npm and tsc): tap puts the loader in NODE_OPTIONS and
 * re-adds it on every spawn; in a spawned server it runs in the main thread and in every worker thread and
 * about doubles the CPU a start costs. Threads (the writer and reader of every in-process aggregator):
 * they inherit the test process's own flags, the loader's `--import` with them, which costs ~130 ms of CPU
 * per thread start; they get the same flags without it.
 */
const PROCESS_INFO = /"?--(?:import|loader)=\S*@tapjs\/processinfo\S*/g;

const spawnHooks = (globalThis as Record<symbol, { listeners: unknown[] } | undefined>)[Symbol.for('process-on-spawn@*:singletonId')];
spawnHooks?.listeners.splice(0);
const nodeOptions = process.env.NODE_OPTIONS?.replace(PROCESS_INFO, '').trim();
if (nodeOptions) process.env.NODE_OPTIONS = nodeOptions;
else delete process.env.NODE_OPTIONS;

const threadArgv = process.execArgv.filter((arg) => !arg.match(PROCESS_INFO));
class PlainWorker extends workerThreads.Worker {
  constructor(filename: string | URL, options: WorkerOptions = {}) {
    super(filename, { ...options, execArgv: options.execArgv ?? threadArgv });
  }
}
(workerThreads as { Worker: typeof workerThreads.Worker }).Worker = PlainWorker;
// ES modules that import { Worker } from 'node:worker_threads' see the change too.
syncBuiltinESMExports();
