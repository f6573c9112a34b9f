/** Small statistics over samples: percentiles by nearest rank, medians of run results. */

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function median(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export function sortNumbers(xs: number[]): number[] {
  return xs.sort((a, b) => a - b);
}

/** Median of every numeric field over a list of run results (non-numeric fields: first run's). */
export function medianRecord<T extends Record<string, unknown>>(runs: readonly T[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (runs.length === 0) return out;
  for (const key of Object.keys(runs[0]!)) {
    const vals = runs.map((r) => r[key]);
    if (vals.every((v) => typeof v === 'number')) out[key] = median(vals as number[]);
    else if (vals.every((v) => typeof v === 'boolean')) out[key] = (vals as boolean[]).every(Boolean);
    else out[key] = vals[0];
  }
  return out;
}
