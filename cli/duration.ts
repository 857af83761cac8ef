// Durations on the command line: 500ms, 30s, 5m, 1h30m, or a bare number of seconds.

import { UsageError } from './args.js';

/** Milliseconds. `flag` names the option in the error (e.g. "interval" -> `--interval: ...`). */
export function parseDuration(text: string, flag?: string): number {
  if (/^[0-9]+(\.[0-9]+)?$/.test(text)) return Number(text) * 1000;
  if (!/^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/.test(text)) {
    throw new UsageError(`${flag ? `--${flag}: ` : ''}"${text}" is not a duration: write e.g. 500ms, 30s, 5m or 1h30m`);
  }
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const m of text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) total += Number(m[1]) * unit[m[2]];
  return total;
}
