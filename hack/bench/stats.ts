// Figures the benchmarks share.

/** The p-th percentile (0-100) of xs, nearest rank below (NaN when empty); xs is left as it is. */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}
