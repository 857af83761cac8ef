// A soft memory target for vc-manager (Go's GOMEMLIMIT, for V8): while the process's RSS nears
// the target, V8 is told to grow its heap less past what the last full collection kept
// (`--heap-growing-percent`, read by V8 at each collection), so garbage is collected sooner instead
// of the heap growing; well below the target, V8's own growth comes back. It never fails: a live
// set larger than the target only makes collections more frequent.
//
// Why: the heap in use after a full collection stays ~260 MiB at 10,000 sim VMs, but while a
// drain makes ~200 MB of garbage a second V8 grew the heap to ~950 MiB (factor up to 4 on a
// machine with memory to spare) and the RSS to ~1.25 GiB (hack/bench-scale 1000:10000, session 21:
// a full collection at the drain's start left 263 MiB in use, RSS 597 MiB).
//
// setFlagsFromString after start is documented by Node as unsupported in general; this one flag
// is a number V8 reads when it sets the next collection's limit (heap/heap-controller.cc).

import { setFlagsFromString } from 'node:v8';

/** The tightest growth asked for (heap limit 1.1x the live set), near or past the target. */
export const TIGHT_GROWING_PERCENT = 10;
/** The growth asked for in the middle band (1.3x). */
export const MODERATE_GROWING_PERCENT = 30;

/**
 * The `--heap-growing-percent` for an RSS of `rss` against `target` bytes, given the current one
 * (0: V8's own): from 80 % of the target, TIGHT; from 65 %, at least MODERATE; below 50 %, V8's
 * own again; in between, unchanged (no flapping at a boundary).
 */
export function growingPercentFor(rss: number, target: number, current: number): number {
  const p = rss / target;
  if (p >= 0.8) return TIGHT_GROWING_PERCENT;
  if (p >= 0.65) return current === TIGHT_GROWING_PERCENT ? TIGHT_GROWING_PERCENT : MODERATE_GROWING_PERCENT;
  if (p < 0.5) return 0;
  return current;
}

export interface MemoryGovernorOptions {
  targetBytes: number;
  /** How often the RSS is read (default 1 s). */
  intervalMs?: number;
  readRss?: () => number;
  /** Sets V8's flag (default: v8.setFlagsFromString). */
  apply?: (percent: number) => void;
  /** Told each change of the percent (a gauge, a log line). */
  onChange?: (percent: number, rss: number) => void;
}

export interface MemoryGovernor {
  /** The percent asked of V8 now (0: its own growth). */
  readonly percent: number;
  /** Reads the RSS and adjusts once (the timer calls it). */
  check(): void;
  /** Stops the timer and gives V8 its own growth back. */
  stop(): void;
}

export function startMemoryGovernor(opts: MemoryGovernorOptions): MemoryGovernor {
  const readRss = opts.readRss ?? (() => process.memoryUsage.rss());
  const apply = opts.apply ?? ((p: number) => setFlagsFromString(`--heap-growing-percent=${p}`));
  let percent = 0;
  const gov: MemoryGovernor = {
    get percent() {
      return percent;
    },
    check() {
      const rss = readRss();
      const next = growingPercentFor(rss, opts.targetBytes, percent);
      if (next === percent) return;
      percent = next;
      apply(percent);
      opts.onChange?.(percent, rss);
    },
    stop() {
      clearInterval(timer);
      if (percent !== 0) apply((percent = 0));
    },
  };
  const timer = setInterval(() => gov.check(), opts.intervalMs ?? 1_000);
  timer.unref();
  return gov;
}
