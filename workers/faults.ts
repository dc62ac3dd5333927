/*
 * Test-only fault injection. The supervisor passes the fault setting (AGGREGATOR_FAULT, read with the rest
 * of the configuration) to the first writer only, as "<point>:<n>": the worker throws at that point
 * of its n-th batch, which kills the thread the way a real crash would. Unset in production, where the
 * injector does nothing.
 */
export type FaultPoint = 'before-commit' | 'after-commit';

export class InjectedFault extends Error {}

export function faultInjector(spec: string | undefined): (point: FaultPoint) => void {
  if (!spec) return () => {};
  const [point, batch] = spec.split(':');
  const target = Number(batch);
  if ((point !== 'before-commit' && point !== 'after-commit') || !Number.isInteger(target) || target < 1) {
    throw new Error(`AGGREGATOR_FAULT must be "before-commit:<n>" or "after-commit:<n>", got "${spec}"`);
  }
  let reached = 0;
  return (at) => {
    if (at === point && ++reached === target) throw new InjectedFault(`injected fault ${spec}`);
  };
}
