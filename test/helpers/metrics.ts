/**
 * The value of one sample in a Prometheus text exposition: the first line of metric `name` whose labels
 * include every one of `labels`. Throws, naming it, when there is none, so that a renamed metric fails the
 * test that reads it rather than reading as NaN.
 */
export function metricValue(exposition: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([label, value]) => `${label}="${value}"`);
  for (const line of exposition.split('\n')) {
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (sample?.[1] === name && wanted.every((label) => (sample[2] ?? '').split(',').includes(label))) return Number(sample[3]);
  }
  throw new Error(`no sample of ${name}${wanted.length ? `{${wanted.join(',')}}` : ''} in /metrics`);
}
