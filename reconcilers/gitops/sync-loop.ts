// The long-running form of `vcctl sync`: an initial sync, then a sync after every change under the
// directory (--watch: chokidar, debounced) and/or every interval (--interval: git pull --ff-only
// first). One sync at a time; changes during a sync lead to exactly one more (SyncScheduler).

import type { GitSourceSyncer, SyncReport } from './git-source-syncer.js';
import { ManifestWatcher } from './manifest-watcher.js';
import { SyncScheduler } from './sync-scheduler.js';

export interface SyncLoopOptions {
  dir: string;
  watch: boolean;
  /** Pull and sync this often; undefined = never. */
  intervalMs?: number;
  /** Quiet time after a file change before syncing. */
  debounceMs?: number;
  /** Ends the loop (SIGINT/SIGTERM in the CLI). */
  signal: AbortSignal;
  onReport(report: SyncReport): void;
  /** An error that is not a sync outcome (the store is unreachable, the watcher broke). */
  onError(err: unknown): void;
}

export const DEFAULT_DEBOUNCE_MS = 100;

/** Runs until the signal aborts; resolves after the running sync has finished and all is closed. */
export async function runSyncLoop(syncer: GitSourceSyncer, opts: SyncLoopOptions): Promise<void> {
  let pullDue = opts.intervalMs !== undefined;
  const scheduler = new SyncScheduler({
    debounceMs: opts.debounceMs ?? DEFAULT_DEBOUNCE_MS,
    run: async () => {
      const pull = pullDue;
      pullDue = false;
      opts.onReport(await syncer.sync({ pull }));
    },
    onError: opts.onError,
  });
  let watcher: ManifestWatcher | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    // Watch before the first sync, so that an edit made during it is not missed.
    if (opts.watch) {
      watcher = await ManifestWatcher.start(opts.dir, { onChange: () => scheduler.request(), onError: opts.onError });
    }
    if (opts.intervalMs !== undefined) {
      timer = setInterval(() => {
        pullDue = true;
        scheduler.requestNow();
      }, opts.intervalMs);
    }
    scheduler.requestNow();
    if (!opts.signal.aborted) {
      await new Promise<void>((resolve) => opts.signal.addEventListener('abort', () => resolve(), { once: true }));
    }
  } finally {
    if (timer) clearInterval(timer);
    await watcher?.close();
    await scheduler.close();
  }
}
