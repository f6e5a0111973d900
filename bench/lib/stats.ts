/** Order statistics of repeated trials: medians with their spread, never a single run. */
export interface Summary {
  readonly n: number;
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** Interquartile range bounds (equal to min/max below 4 samples). */
  readonly q1: number;
  readonly q3: number;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 1) return sorted[0]!;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function summarize(values: readonly number[]): Summary | null {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const small = v.length < 4;
  return { n: v.length, median: quantile(v, 0.5), min: v[0]!, max: v[v.length - 1]!, q1: small ? v[0]! : quantile(v, 0.25), q3: small ? v[v.length - 1]! : quantile(v, 0.75) };
}

/** Compact human number: 3 significant digits, no exponent for ordinary magnitudes. */
export function fmtNum(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  const a = Math.abs(x);
  if (a >= 1000) return x.toFixed(0);
  if (a >= 100) return x.toFixed(1);
  if (a >= 10) return x.toFixed(2);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}
