// Watches a manifest directory with chokidar 4 and reports every change that can alter what a
// sync reads: a *.yaml/*.yml file added, changed or removed, or a directory added or removed.
// `.git` is never watched (a git operation rewrites many files there; the work-tree files it
// changes are reported on their own). The caller debounces (SyncScheduler).

import { watch, type FSWatcher } from 'chokidar';
import { basename, sep } from 'node:path';

export interface ManifestWatcherOptions {
  onChange: (event: string, path: string) => void;
  onError?: (err: Error) => void;
}

/** Whether a path is a manifest a sync reads. */
export function isManifestPath(path: string): boolean {
  return /\.ya?ml$/i.test(path);
}

function isInGitDir(path: string): boolean {
  return basename(path) === '.git' || path.includes(`${sep}.git${sep}`);
}

export class ManifestWatcher {
  private constructor(private readonly fsw: FSWatcher) {}

  /** Starts watching; resolves once the initial scan is done (later changes are all reported). */
  static async start(dir: string, opts: ManifestWatcherOptions): Promise<ManifestWatcher> {
    const fsw = watch(dir, {
      ignoreInitial: true,
      persistent: true,
      // Editors save by writing a temporary file and renaming it over the original; `atomic`
      // reports that as one change instead of unlink + add.
      atomic: true,
      ignored: (path: string) => isInGitDir(path),
    });
    fsw.on('all', (event, path) => {
      if (event === 'addDir' || event === 'unlinkDir' || isManifestPath(path)) opts.onChange(event, path);
    });
    fsw.on('error', (err) => opts.onError?.(err instanceof Error ? err : new Error(String(err))));
    await new Promise<void>((resolve) => fsw.once('ready', () => resolve()));
    return new ManifestWatcher(fsw);
  }

  async close(): Promise<void> {
    await this.fsw.close();
  }
}
