// Qcow2Driver: the original is a read-only (0444) copy of the template in the VC's directory on
// the shared storage root; each snapshot is a qcow2 overlay whose backing file is the original
// (`qemu-img create -f qcow2 -F <fmt> -b <original>`). The backing file is named relative to the
// overlay (both live in the VC's directory), so the overlays stay valid on hosts that mount the
// SAN at another path. Writes to an overlay allocate clusters in it only: snapshots are
// independent of each other and of the original.

import { posix } from 'node:path';
import {
  FileVolumeDriverBase,
  allocatedBytes,
  buildAtomically,
  ensureDir,
  pathExists,
  pathsUsage,
  removePath,
  run,
  tmpPathOf,
  treeBytes,
} from './file-volumes.js';
import { materializeTemplate, probeFormat } from './template-image.js';
import type { StorageDriver, TemplateSource, VolumeInfo, VolumeKey } from './types.js';

/**
 * For each final path: skip if present; else build it under its temporary and rename it into
 * place. The first overlay of the batch comes from qemu-img; the others are byte copies of it,
 * made before anything can use it (its Volume is not Ready yet): an empty overlay holds nothing
 * but the header naming the backing file, so a copy is an equally independent overlay, and cp
 * costs a fraction of a qemu-img start.
 */
const SNAPSHOT_ALL_QCOW2 = `fmt=$1; backing=$2; shift 2
src=
for final in "$@"; do
  [ -e "$final" ] && continue
  tmp="\${final%/*}/.\${final##*/}.tmp"
  if [ -z "$src" ]; then
    qemu-img create -q -f qcow2 -F "$fmt" -b "$backing" "$tmp" || { rm -f -- "$tmp"; exit 1; }
  else
    cp -- "$src" "$tmp" || { rm -f -- "$tmp"; exit 1; }
  fi
  mv -T -- "$tmp" "$final" || { rm -f -- "$tmp"; exit 1; }
  [ -n "$src" ] || src=$final
done`;

export class Qcow2Driver extends FileVolumeDriverBase implements StorageDriver {
  readonly name = 'qcow2' as const;

  async createOriginal(key: VolumeKey, source: TemplateSource): Promise<VolumeInfo> {
    const t = this.transport;
    const path = this.pathOf(key);
    if (await pathExists(t, path)) return { path, format: await probeFormat(t, path) };
    await ensureDir(t, key.vcDir);
    let format: 'qcow2' | 'raw' = 'raw';
    await buildAtomically(t, path, async (tmp) => {
      format = await materializeTemplate(t, source, tmp, 'auto');
      await run(t, 'make original read-only', ['chmod', '0444', tmp]);
    });
    return { path, format };
  }

  async snapshot(original: VolumeKey, key: VolumeKey): Promise<VolumeInfo> {
    const path = this.pathOf(key);
    if (await pathExists(this.transport, path)) return { path, format: 'qcow2' };
    await this.makeOverlay(original, path);
    return { path, format: 'qcow2' };
  }

  async snapshotAll(original: VolumeKey, keys: readonly VolumeKey[]): Promise<VolumeInfo[]> {
    const origPath = this.pathOf(original);
    const dir = posix.dirname(origPath);
    const local = keys.filter((k) => posix.dirname(this.pathOf(k)) === dir);
    for (const k of keys) if (!local.includes(k)) await this.snapshot(original, k);
    if (local.length > 0) {
      const fmt = await this.formatOf(origPath);
      // Names are argv elements ($3...), never part of the script text.
      await run(this.transport, 'create snapshot overlays', [
        'sh', '-c', SNAPSHOT_ALL_QCOW2, 'sh', fmt, posix.basename(origPath), ...local.map((k) => this.pathOf(k)),
      ], { cwd: dir });
    }
    return keys.map((k) => ({ path: this.pathOf(k), format: 'qcow2' }));
  }

  async reset(original: VolumeKey, key: VolumeKey): Promise<VolumeInfo> {
    // The fresh overlay is renamed over the old one: there is no moment without a disk.
    const path = this.pathOf(key);
    await this.makeOverlay(original, path);
    return { path, format: 'qcow2' };
  }

  /** Formats of originals seen by this driver instance (originals are immutable while used). */
  private readonly formats = new Map<string, 'qcow2' | 'raw'>();

  private async formatOf(path: string): Promise<'qcow2' | 'raw'> {
    let f = this.formats.get(path);
    if (!f) {
      f = await probeFormat(this.transport, path);
      this.formats.set(path, f);
    }
    return f;
  }

  private async makeOverlay(original: VolumeKey, path: string): Promise<void> {
    const t = this.transport;
    const origPath = this.pathOf(original);
    const backingFormat = await this.formatOf(origPath);
    const sameDir = posix.dirname(origPath) === posix.dirname(path);
    // Relative to the overlay's directory when both share it (the normal case).
    const backing = sameDir ? posix.basename(origPath) : origPath;
    if (!sameDir) await ensureDir(t, posix.dirname(path));
    // One round trip: qemu-img create truncates a stale temporary, then the rename publishes it.
    const tmp = tmpPathOf(path);
    try {
      await run(
        t,
        'create snapshot overlay',
        ['sh', '-c', 'qemu-img create -q -f qcow2 -F "$1" -b "$2" "$3" && mv -T -- "$3" "$4"', 'sh', backingFormat, backing, tmp, path],
        { cwd: posix.dirname(path) },
      );
    } catch (e) {
      await removePath(t, tmp).catch(() => undefined);
      throw e;
    }
  }

  async remove(key: VolumeKey): Promise<void> {
    const path = this.pathOf(key);
    this.formats.delete(path);
    await removePath(this.transport, tmpPathOf(path));
    await removePath(this.transport, path);
  }

  async removeAll(keys: readonly VolumeKey[]): Promise<void> {
    const paths = keys.map((k) => this.pathOf(k));
    for (const p of paths) this.formats.delete(p);
    if (paths.length > 0) await run(this.transport, 'remove volumes', ['rm', '-rf', '--one-file-system', '--', ...paths.flatMap((p) => [tmpPathOf(p), p])]);
  }

  async usage(key: VolumeKey): Promise<number> {
    const path = this.pathOf(key);
    const r = await this.transport.exec(['test', '-d', path]);
    return r.code === 0 ? treeBytes(this.transport, path) : allocatedBytes(this.transport, path);
  }

  usageAll(keys: readonly VolumeKey[]): Promise<number[]> {
    return pathsUsage(this.transport, keys.map((k) => this.pathOf(k)));
  }

  exists(key: VolumeKey): Promise<boolean> {
    return pathExists(this.transport, this.pathOf(key));
  }
}
