/**
 * Child processes of the suite (spawned servers, the container build's npm and tsc) start as a user's would:
 * without tap's process-info loader. tap puts that loader in NODE_OPTIONS and re-adds it on every spawn, for
 * coverage bookkeeping the suite turns off ("disable-coverage"); in a spawned server it runs in the main
 * thread and in every worker thread and about doubles the CPU a start costs. Importing this module drops both.
 */
const spawnHooks = (globalThis as Record<symbol, { listeners: unknown[] } | undefined>)[Symbol.for('process-on-spawn@*:singletonId')];
spawnHooks?.listeners.splice(0);
const nodeOptions = process.env.NODE_OPTIONS?.replace(/"?--(?:import|loader)=\S*@tapjs\/processinfo\S*/g, '').trim();
if (nodeOptions) process.env.NODE_OPTIONS = nodeOptions;
else delete process.env.NODE_OPTIONS;
