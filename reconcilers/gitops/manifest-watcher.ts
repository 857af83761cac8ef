// Watches a manifest directory with chokidar 4 and reports every change that can alter what a
// sync reads (api/input's rules): a *.yaml/*.yml/*.json file added, changed or removed, or a
// directory added or removed. Directories whose name starts with a dot are not read by the sync
// and not watched: above all `.git`, where a git operation rewrites many files (the work-tree
// files it changes are reported on their own). The caller debounces (SyncScheduler).

import { watch, type FSWatcher } from 'chokidar';
import { relative, resolve, sep } from 'node:path';

export interface ManifestWatcherOptions {
  onChange: (event: string, path: string) => void;
  onError?: (err: Error) => void;
}

/** Whether a path is a manifest a sync reads. */
export function isManifestPath(path: string): boolean {
  return /\.(ya?ml|json)$/i.test(path);
}

/** Whether a path is in (or is) a dot-directory below root. */
export function isUnderDotDir(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && rel.split(sep).some((seg, i, all) => seg.startsWith('.') && seg !== '..' && (i < all.length - 1 || !isManifestPath(seg)));
}

export class ManifestWatcher {
  private constructor(private readonly fsw: FSWatcher) {}

  /** Starts watching; resolves once the initial scan is done (later changes are all reported). */
  static async start(dirArg: string, opts: ManifestWatcherOptions): Promise<ManifestWatcher> {
    const dir = resolve(dirArg);
    const fsw = watch(dir, {
      ignoreInitial: true,
      persistent: true,
      // Editors save by writing a temporary file and renaming it over the original; `atomic`
      // reports that as one change instead of unlink + add.
      atomic: true,
      ignored: (path: string) => isUnderDotDir(dir, path),
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
