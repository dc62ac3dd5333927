/*
 * A Prometheus histogram as /metrics prints it, read between two scrapes: its counts are cumulative over
 * the server's life, so the difference of two scrapes holds exactly the observations in between.
 */

/** Cumulative observations within each bucket bound (ms; +Inf included), summed over the series whose labels include `having`. */
export type HistogramCounts = Map<number, number>;

export function histogramIn(metricsText: string, name: string, having = ''): HistogramCounts {
  const counts: HistogramCounts = new Map();
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith(`${name}_bucket{`) || !line.includes(having)) continue;
    const le = /le="([^"]+)"/.exec(line)![1]!;
    const bound = le === '+Inf' ? Infinity : Number(le) * 1000;
    counts.set(bound, (counts.get(bound) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return counts;
}

/**
 * The observations between two scrapes: how many, how many within `ms` (exact when `ms` is a bucket bound),
 * and the smallest bound within which `share` of them fall (Infinity: only past the last bound).
 */
export function observedBetween(before: HistogramCounts, after: HistogramCounts) {
  const within = (ms: number) => (after.get(ms) ?? 0) - (before.get(ms) ?? 0);
  const count = within(Infinity);
  const bounds = [...after.keys()].sort((a, b) => a - b);
  return {
    count,
    within,
    boundHolding: (share: number) => bounds.find((ms) => within(ms) >= share * count) ?? Infinity,
    /** The largest finite bound. */
    lastBound: Math.max(0, ...bounds.filter(Number.isFinite)),
  };
}
