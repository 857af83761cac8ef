// Progress of a live migration into Migration.status.progress while QEMU transfers: the figures
// the dashboard (and `vcctl get mig -o yaml`) show. The hypervisor reports a sample every poll
// (tens of ms); the store gets at most one write in flight and one per interval, the newest sample
// replacing any that waited. A failed write is dropped: the next sample carries newer figures, and
// the outcome written at the end never depends on these writes.

import type { MigrationProgressStatus } from '../../api/types.js';
import type { MigrationProgress } from '../../drivers/hypervisor/types.js';

export const PROGRESS_INTERVAL_MS = 500;

/** The stored form of one sample, taken at `atMs`. */
export function progressStatus(p: MigrationProgress, atMs: number): MigrationProgressStatus {
  const n = (v: number | undefined) => (Number.isFinite(v) && (v as number) > 0 ? Math.round(v as number) : 0);
  return {
    transferredBytes: n(p.transferredBytes), remainingBytes: n(p.remainingBytes), totalBytes: n(p.totalBytes),
    dirtyBytesPerSec: n(p.dirtyBytesPerSec), throughputBytesPerSec: n(p.throughputBytesPerSec), passes: n(p.passes),
    sampleTime: new Date(atMs).toISOString(),
  };
}

export interface ProgressWriter {
  /** Give to the driver as MigrateOptions.onProgress. */
  sample(p: MigrationProgress): void;
  /** Stops writing, waits for a write in flight, and returns the newest sample (for the final status). */
  close(): Promise<MigrationProgressStatus | undefined>;
}

export function progressWriter(
  write: (p: MigrationProgressStatus) => Promise<unknown>,
  opts: { intervalMs?: number; now?: () => number } = {},
): ProgressWriter {
  const intervalMs = opts.intervalMs ?? PROGRESS_INTERVAL_MS;
  const now = opts.now ?? Date.now;
  let newest: MigrationProgressStatus | undefined;
  let pending: MigrationProgressStatus | undefined;
  let inflight: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let lastWriteMs = -Infinity;
  let closed = false;

  const pump = (): void => {
    if (closed || inflight || !pending) return;
    const wait = lastWriteMs + intervalMs - now();
    if (wait > 0) {
      timer ??= setTimeout(() => { timer = undefined; pump(); }, wait);
      return;
    }
    const p = pending;
    pending = undefined;
    lastWriteMs = now();
    inflight = write(p).then(() => undefined, () => undefined).finally(() => { inflight = undefined; pump(); });
  };

  return {
    sample(p) {
      if (closed) return;
      newest = pending = progressStatus(p, now());
      pump();
    },
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      await inflight;
      return newest;
    },
  };
}
