/** What the chart needs of each scenario's result. */
export interface ChartRow {
  scenario: string;
  uniquePerSecond: number;
  latencyMs: { p50: number; p99: number };
}

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/**
 * A self-contained SVG: unique events/s per scenario against the same-run store baseline (left), and
 * request latency p50/p99 (right).
 */
export function renderChart(rows: ChartRow[], baselinePerSecond: number, title: string): string {
  const rowHeight = 24;
  const top = 56;
  const label = 120;
  const panel = 330;
  const gap = 70;
  const height = top + rows.length * rowHeight + 40;
  const width = label + panel + gap + label + panel + 20;
  const maxRate = Math.max(baselinePerSecond, ...rows.map((r) => r.uniquePerSecond)) * 1.1;
  const maxLatency = Math.max(1, ...rows.map((r) => r.latencyMs.p99)) * 1.1;
  const rateX = (v: number) => label + (v / maxRate) * panel;
  const latencyLeft = label + panel + gap + label;
  const latencyX = (v: number) => latencyLeft + (v / maxLatency) * panel;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">${escape(title)}</text>`,
    `<text x="${label}" y="44" font-weight="bold">unique events/s (dashed: store alone, same run)</text>`,
    `<text x="${latencyLeft}" y="44" font-weight="bold">request latency, ms (light: p50, dark: p99)</text>`,
  ];
  rows.forEach((row, i) => {
    const y = top + i * rowHeight;
    for (const left of [10, label + panel + gap]) {
      parts.push(`<text x="${left}" y="${y + 15}">${escape(row.scenario)}</text>`);
    }
    parts.push(
      `<rect x="${label}" y="${y + 3}" width="${rateX(row.uniquePerSecond) - label}" height="${rowHeight - 8}" fill="#4c78a8"/>`,
      `<text x="${rateX(row.uniquePerSecond) + 4}" y="${y + 15}">${row.uniquePerSecond.toLocaleString('en')}</text>`,
      `<rect x="${latencyLeft}" y="${y + 3}" width="${latencyX(row.latencyMs.p99) - latencyLeft}" height="${rowHeight - 8}" fill="#e45756"/>`,
      `<rect x="${latencyLeft}" y="${y + 3}" width="${latencyX(row.latencyMs.p50) - latencyLeft}" height="${rowHeight - 8}" fill="#f4a6a5"/>`,
      `<text x="${latencyX(row.latencyMs.p99) + 4}" y="${y + 15}">${row.latencyMs.p50} / ${row.latencyMs.p99}</text>`,
    );
  });
  const bottom = top + rows.length * rowHeight;
  parts.push(
    `<line x1="${rateX(baselinePerSecond)}" y1="${top - 4}" x2="${rateX(baselinePerSecond)}" y2="${bottom}" stroke="#333" stroke-dasharray="4 3"/>`,
    `<text x="${rateX(baselinePerSecond)}" y="${bottom + 16}" text-anchor="middle">store ${baselinePerSecond.toLocaleString('en')}/s</text>`,
    '</svg>',
  );
  return parts.join('\n');
}
