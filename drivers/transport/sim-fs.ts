// SIMULATION ONLY (benchmarks and sim unit tests; never production, never the proof a feature
// works): the files of a sim host (sim-host.ts), a plain in-memory tree. One instance per host for
// its local paths (the run root) and one per storage root shared by every sim host that names it
// (the SAN), so a volume or a saved state written through one node is seen through every other.
//
// Contract: paths are absolute POSIX paths, normalised (no "." or ".." handling beyond collapsing
// slashes). Directories exist implicitly once a file is written below them or mkdir made them.
// Removal of a directory removes everything below it; the cost is one pass over the directories,
// not over the files.

import { posix } from 'node:path';

export class SimFs {
  /** Directory path -> the files directly in it (name -> bytes). */
  private readonly dirs = new Map<string, Map<string, Buffer>>([['/', new Map()]]);

  static norm(path: string): string {
    const p = posix.normalize(path);
    return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
  }

  mkdirp(path: string): void {
    let p = SimFs.norm(path);
    while (!this.dirs.has(p)) {
      this.dirs.set(p, new Map());
      p = posix.dirname(p);
    }
  }

  write(path: string, data: Buffer): void {
    const p = SimFs.norm(path);
    this.mkdirp(posix.dirname(p));
    this.dirs.get(posix.dirname(p))!.set(posix.basename(p), data);
  }

  read(path: string): Buffer | undefined {
    const p = SimFs.norm(path);
    return this.dirs.get(posix.dirname(p))?.get(posix.basename(p));
  }

  isDir(path: string): boolean {
    return this.dirs.has(SimFs.norm(path));
  }

  exists(path: string): boolean {
    return this.isDir(path) || this.read(path) !== undefined;
  }

  /** Removes a file or a directory tree; false when nothing was there. */
  remove(path: string): boolean {
    const p = SimFs.norm(path);
    let found = this.dirs.get(posix.dirname(p))?.delete(posix.basename(p)) ?? false;
    if (this.dirs.has(p)) {
      found = true;
      const below = p === '/' ? '/' : `${p}/`;
      for (const d of [...this.dirs.keys()]) if (d === p || d.startsWith(below)) this.dirs.delete(d);
      if (p === '/') this.dirs.set('/', new Map());
    }
    return found;
  }

  /** Renames a file (atomic in the model); false when the source is absent. */
  rename(from: string, to: string): boolean {
    const data = this.read(from);
    if (data === undefined) return false;
    this.remove(from);
    this.write(to, data);
    return true;
  }

  /** Number of files, for tests and memory accounting. */
  get fileCount(): number {
    let n = 0;
    for (const d of this.dirs.values()) n += d.size;
    return n;
  }
}
