// Durations on the command line: 500ms, 30s, 5m, 1h30m, or a bare number of seconds.

import { UsageError } from './args.js';

/** The longest duration a timer can wait (Node's setTimeout takes at most 2^31-1 ms, about 24.8
 * days; a longer one fires at once with a TimeoutOverflowWarning), so the longest we accept. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** Milliseconds. `flag` names the option in the error (e.g. "interval" -> `--interval: ...`).
 * Values over MAX_DURATION_MS are refused (a UsageError), not clamped. */
export function parseDuration(text: string, flag?: string): number {
  const where = flag ? `--${flag}: ` : '';
  let total: number;
  if (/^[0-9]+(\.[0-9]+)?$/.test(text)) {
    total = Number(text) * 1000;
  } else if (/^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/.test(text)) {
    const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
    total = 0;
    for (const m of text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) total += Number(m[1]) * unit[m[2]];
  } else {
    throw new UsageError(`${where}"${text}" is not a duration: write e.g. 500ms, 30s, 5m or 1h30m`);
  }
  if (!(total <= MAX_DURATION_MS)) {
    throw new UsageError(`${where}"${text}" is too long: at most 596h (${MAX_DURATION_MS} ms, the longest a timer can wait)`);
  }
  return total;
}
