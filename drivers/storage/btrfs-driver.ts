// BtrfsDriver: the storage root is a btrfs filesystem. The original is a subvolume holding the
// template's image as the file `disk` (a reflink clone when the template is on the same
// filesystem), made read-only with `btrfs property set -ts <subvol> ro true`. Each snapshot is a
// writable `btrfs subvolume snapshot` of the original: an independent volume sharing every extent
// with it until one side writes (copy-on-write at the extent level). The disk a hypervisor
// attaches is `<subvolume>/disk`, in the template's format.

import { posix } from 'node:path';
import {
  FileVolumeDriverBase,
  ensureDir,
  pathExists,
  removePath,
  run,
  tmpPathOf,
  treeBytes,
  allocatedBytes,
} from './file-volumes.js';
import { materializeTemplate, probeFormat } from './template-image.js';
import type { StorageDriver, TemplateSource, VolumeInfo, VolumeKey } from './types.js';

const DISK = 'disk';

/** For each final path: skip if present; else drop a stale temporary, snapshot into it, rename. */
const SNAPSHOT_ALL_BTRFS = `orig=$1; shift
for final in "$@"; do
  [ -e "$final" ] && continue
  tmp="\${final%/*}/.\${final##*/}.tmp"
  if [ -e "$tmp" ]; then btrfs subvolume delete "$tmp" >/dev/null || exit 1; fi
  if ! { btrfs subvolume snapshot "$orig" "$tmp" >/dev/null && mv -T -- "$tmp" "$final"; }; then
    [ -e "$tmp" ] && btrfs subvolume delete "$tmp" >/dev/null; exit 1
  fi
done`;

/** What `usage` measures, for each path: a subvolume's exclusive bytes, else du; absent 0. */
const USAGE_ALL_BTRFS = `for p; do
  if [ ! -e "$p" ]; then echo 0
  elif btrfs subvolume show "$p" >/dev/null 2>&1; then btrfs filesystem du -s --raw "$p" | awk 'END { print $2 }'
  else du -s -B1 -- "$p" | cut -f1; fi
done`;

/** What `remove` does, for each path: its temporary, then itself; subvolumes by btrfs. */
const REMOVE_ALL_BTRFS = `for p; do
  for x in "\${p%/*}/.\${p##*/}.tmp" "$p"; do
    [ -e "$x" ] || continue
    if btrfs subvolume show "$x" >/dev/null 2>&1; then btrfs subvolume delete "$x" >/dev/null || exit 1
    else rm -rf --one-file-system -- "$x" || exit 1; fi
  done
done`;

export class BtrfsDriver extends FileVolumeDriverBase implements StorageDriver {
  readonly name = 'btrfs' as const;

  /** The subvolume (originals, snapshots) or file (swap, config, shared) of the volume. */
  volumeDir(key: VolumeKey): string {
    return this.pathOf(key);
  }

  private readonly formats = new Map<string, 'qcow2' | 'raw'>();

  /** The format of a snapshot is its original's, probed once per driver instance. */
  private async formatOf(original: VolumeKey): Promise<'qcow2' | 'raw'> {
    const disk = this.diskOf(this.volumeDir(original));
    let f = this.formats.get(disk);
    if (!f) {
      f = await probeFormat(this.transport, disk);
      this.formats.set(disk, f);
    }
    return f;
  }

  private diskOf(subvol: string): string {
    return posix.join(subvol, DISK);
  }

  private async isSubvolume(path: string): Promise<boolean> {
    const r = await this.transport.exec(['btrfs', 'subvolume', 'show', path]);
    return r.code === 0;
  }

  private async deleteSubvolume(path: string): Promise<void> {
    const t = this.transport;
    if (!(await pathExists(t, path))) return;
    if (await this.isSubvolume(path)) {
      await run(t, 'delete subvolume', ['btrfs', 'subvolume', 'delete', path]);
    } else {
      await removePath(t, path);
    }
  }

  async createOriginal(key: VolumeKey, source: TemplateSource): Promise<VolumeInfo> {
    const t = this.transport;
    const dir = this.volumeDir(key);
    if (!(await pathExists(t, dir))) {
      await ensureDir(t, key.vcDir);
      const tmp = tmpPathOf(dir);
      await this.deleteSubvolume(tmp);
      try {
        await run(t, 'create subvolume', ['btrfs', 'subvolume', 'create', tmp]);
        await materializeTemplate(t, source, this.diskOf(tmp), 'always');
        await run(t, 'rename into place', ['mv', '-T', '--', tmp, dir]);
      } catch (e) {
        await this.deleteSubvolume(tmp).catch(() => undefined);
        throw e;
      }
    }
    // Also after a crash between the rename and this line.
    await run(t, 'make original read-only', ['btrfs', 'property', 'set', '-ts', dir, 'ro', 'true']);
    const path = this.diskOf(dir);
    return { path, format: await probeFormat(t, path) };
  }

  async snapshot(original: VolumeKey, key: VolumeKey): Promise<VolumeInfo> {
    const dir = this.volumeDir(key);
    if (!(await pathExists(this.transport, dir))) await this.makeSnapshot(original, dir, false);
    return { path: this.diskOf(dir), format: await this.formatOf(original) };
  }

  async snapshotAll(original: VolumeKey, keys: readonly VolumeKey[]): Promise<VolumeInfo[]> {
    if (keys.length === 0) return [];
    await run(this.transport, 'snapshot subvolumes', [
      'sh', '-c', SNAPSHOT_ALL_BTRFS, 'sh', this.volumeDir(original), ...keys.map((k) => this.volumeDir(k)),
    ]);
    const format = await this.formatOf(original);
    return keys.map((k) => ({ path: this.diskOf(this.volumeDir(k)), format }));
  }

  async reset(original: VolumeKey, key: VolumeKey): Promise<VolumeInfo> {
    const dir = this.volumeDir(key);
    await this.makeSnapshot(original, dir, true);
    return { path: this.diskOf(dir), format: await this.formatOf(original) };
  }

  /** Snapshot into the temporary, then (replace: drop the old one and) rename into place. */
  private async makeSnapshot(original: VolumeKey, dir: string, replace: boolean): Promise<void> {
    const t = this.transport;
    const tmp = tmpPathOf(dir);
    await this.deleteSubvolume(tmp);
    try {
      if (replace) {
        await run(t, 'snapshot subvolume', ['btrfs', 'subvolume', 'snapshot', this.volumeDir(original), tmp]);
        await this.deleteSubvolume(dir);
        await run(t, 'rename into place', ['mv', '-T', '--', tmp, dir]);
      } else {
        // One round trip for the common case.
        await run(t, 'snapshot subvolume', [
          'sh', '-c', 'btrfs subvolume snapshot "$1" "$2" >/dev/null && mv -T -- "$2" "$3"', 'sh', this.volumeDir(original), tmp, dir,
        ]);
      }
    } catch (e) {
      await this.deleteSubvolume(tmp).catch(() => undefined);
      throw e;
    }
  }

  async remove(key: VolumeKey): Promise<void> {
    const dir = this.volumeDir(key);
    this.formats.delete(this.diskOf(dir));
    await this.deleteSubvolume(tmpPathOf(dir));
    await this.deleteSubvolume(dir);
  }

  async removeAll(keys: readonly VolumeKey[]): Promise<void> {
    const dirs = keys.map((k) => this.volumeDir(k));
    for (const d of dirs) this.formats.delete(this.diskOf(d));
    if (dirs.length > 0) await run(this.transport, 'remove volumes', ['sh', '-c', REMOVE_ALL_BTRFS, 'sh', ...dirs]);
  }

  /** Subvolumes: the bytes only this volume holds (`btrfs filesystem du` Exclusive). */
  async usage(key: VolumeKey): Promise<number> {
    const t = this.transport;
    const dir = this.volumeDir(key);
    if (!(await pathExists(t, dir))) return 0;
    if (await this.isSubvolume(dir)) {
      const out = await run(t, 'measure usage', ['btrfs', 'filesystem', 'du', '-s', '--raw', dir]);
      const line = out.trim().split('\n').pop() ?? '';
      return Number(line.trim().split(/\s+/)[1] ?? 0);
    }
    const r = await t.exec(['test', '-d', dir]);
    return r.code === 0 ? treeBytes(t, dir) : allocatedBytes(t, dir);
  }

  /** `usage` of every key in one script: one line per volume (its number of bytes). */
  async usageAll(keys: readonly VolumeKey[]): Promise<number[]> {
    if (keys.length === 0) return [];
    const out = await run(this.transport, 'measure usage', ['sh', '-c', USAGE_ALL_BTRFS, 'sh', ...keys.map((k) => this.volumeDir(k))]);
    const lines = out.split('\n');
    return keys.map((_, i) => Number(lines[i]?.trim() || 0) || 0);
  }

  exists(key: VolumeKey): Promise<boolean> {
    return pathExists(this.transport, this.volumeDir(key));
  }
}
