// Small helpers shared by the transport, testbed and node tests.

export { pidAlive as alive } from '../../hack/lib/testbed.js';

export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000, stepMs = 50): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Given a log of "+" (start) and "-" (end) lines, the most commands that ran at once. */
export function maxOverlap(log: string): { max: number; lines: number } {
  let cur = 0;
  let max = 0;
  const lines = log.trim().split('\n');
  for (const l of lines) {
    cur += l === '+' ? 1 : -1;
    max = Math.max(max, cur);
  }
  return { max, lines: lines.length };
}

/** The script the concurrency tests run: marks start and end of a `sleep SECONDS` in file $1. */
export const overlapScript = (seconds: number) => `echo + >> "$1"; sleep ${seconds}; echo - >> "$1"`;
