// Building blocks shared by the drivers that keep volumes as files under the VC's directory on
// the storage root (qcow2, btrfs; lvm for its config volumes). Every helper goes through the
// Transport with argument vectors; nothing here builds a shell string from data.

import { posix } from 'node:path';
import type { ExecOptions, Transport } from '../transport/types.js';
import type { ConfigItem, VolumeInfo, VolumeKey } from './types.js';
import { StorageError, StorageFullError } from './types.js';

const NO_SPACE = /No space left on device|ENOSPC|Disk quota exceeded|insufficient free space|Insufficient free space/i;

/** The VC's directory on the storage root, derived from its identity only (retries find it). */
export function vcStorageDir(storageRoot: string, namespace: string, name: string, uid: string): string {
  return posix.join(storageRoot, 'vcs', namespace, `${name}-${uid}`);
}

/** The deterministic temporary a volume is built under before it is renamed into place. */
export function tmpPathOf(finalPath: string): string {
  return posix.join(posix.dirname(finalPath), `.${posix.basename(finalPath)}.tmp`);
}

/**
 * Runs argv and returns stdout; a non-zero exit becomes StorageFullError when the tool reports
 * a full device, StorageError otherwise, naming the step.
 */
export async function run(t: Transport, step: string, argv: readonly string[], opts?: ExecOptions): Promise<string> {
  const r = await t.exec(argv, { timeoutMs: 0, ...opts });
  if (r.code !== 0) {
    const detail = (r.stderr.trim() || r.stdout.trim()).slice(0, 2000);
    const msg = `${t.host}: ${step}: \`${argv.join(' ')}\` exited ${r.code}: ${detail}`;
    if (NO_SPACE.test(detail)) {
      throw new StorageFullError(`${msg}; the storage is full: free space on it or remove unused virtual clusters`);
    }
    throw new StorageError(msg);
  }
  return r.stdout;
}

export async function pathExists(t: Transport, path: string): Promise<boolean> {
  const r = await t.exec(['test', '-e', path]);
  return r.code === 0;
}

export async function ensureDir(t: Transport, dir: string): Promise<void> {
  await run(t, 'create directory', ['mkdir', '-p', dir]);
}

/** Removes a file or directory tree; absent is fine. */
export async function removePath(t: Transport, path: string): Promise<void> {
  await run(t, 'remove', ['rm', '-rf', '--one-file-system', '--', path]);
}

/** Allocated bytes of a file (st_blocks * 512), 0 when absent. */
export async function allocatedBytes(t: Transport, path: string): Promise<number> {
  const r = await t.exec(['stat', '-c', '%b %B', '--', path]);
  if (r.code !== 0) return 0;
  const [blocks, size] = r.stdout.trim().split(/\s+/).map(Number);
  return (blocks ?? 0) * (size ?? 512);
}

/** Bytes used by a directory tree (du), 0 when absent. */
export async function treeBytes(t: Transport, path: string): Promise<number> {
  const r = await t.exec(['du', '-s', '-B1', '--', path]);
  if (r.code !== 0) return 0;
  return Number(r.stdout.trim().split(/\s+/)[0] ?? 0);
}

/**
 * Builds `finalPath` by running `build(tmp)` on the deterministic temporary and renaming it into
 * place. A stale temporary from a crash is removed first; a failed build removes its temporary.
 */
export async function buildAtomically(
  t: Transport,
  finalPath: string,
  build: (tmp: string) => Promise<void>,
): Promise<void> {
  const tmp = tmpPathOf(finalPath);
  await removePath(t, tmp);
  try {
    await build(tmp);
    await run(t, 'rename into place', ['mv', '-T', '--', tmp, finalPath]);
  } catch (e) {
    await removePath(t, tmp).catch(() => undefined);
    throw e;
  }
}

/** A raw sparse swap volume formatted with mkswap. */
export async function createSwapFile(t: Transport, path: string, sizeBytes: number): Promise<VolumeInfo> {
  if (!(await pathExists(t, path))) {
    await ensureDir(t, posix.dirname(path));
    await buildAtomically(t, path, async (tmp) => {
      await run(t, 'allocate swap', ['truncate', '-s', String(sizeBytes), tmp]);
      await run(t, 'format swap', ['mkswap', '-q', tmp]);
    });
  }
  return { path, format: 'raw' };
}

/**
 * The ADR 0002 configuration disk: `bytes` then zeros up to `sizeBytes`, replaced atomically (by
 * Transport.writeFile when there are no zeros to add, else as writeConfigFiles does).
 */
export async function writeConfigFile(t: Transport, path: string, bytes: Buffer, sizeBytes = bytes.length): Promise<VolumeInfo> {
  if (sizeBytes !== bytes.length) return (await writeConfigFiles(t, [{ path, bytes, sizeBytes }]))[0]!;
  await ensureDir(t, posix.dirname(path));
  try {
    await t.writeFile(path, bytes, 0o644);
  } catch (e) {
    const m = String((e as Error).message);
    if (NO_SPACE.test(m)) throw new StorageFullError(`${t.host}: write config volume ${path}: ${m}`, { cause: e });
    throw e;
  }
  return { path, format: 'raw' };
}

// The batch scripts below run once per stage for all the VC's volumes of it. Paths are argv
// elements, never part of the script text. Each volume is built under its deterministic temporary
// (tmpPathOf: a stale one from a crash is removed first) and renamed into place; a failure removes
// the failing temporary and stops, leaving the volumes made before it complete. Shell builtins
// ([ -e ], [ -d ]) stand in for commands where they can: each process costs a few milliseconds.
const TMP_OF = `dir=\${final%/*}; tmp="$dir/.\${final##*/}.tmp"
  { [ -d "$dir" ] || mkdir -p -- "$dir"; } && { [ ! -e "$tmp" ] || rm -f -- "$tmp"; }`;

/** Stage 3: for each path absent, a sparse file of $1 bytes formatted with mkswap. */
const SWAP_ALL = `size=$1; shift
for final; do
  [ -e "$final" ] && continue
  if ! { ${TMP_OF} &&
         truncate -s "$size" -- "$tmp" && mkswap -q "$tmp" && mv -T -- "$tmp" "$final"; }; then
    rm -f -- "$tmp"; exit 1
  fi
done`;

export async function createSwapFiles(t: Transport, paths: readonly string[], sizeBytes: number): Promise<VolumeInfo[]> {
  if (paths.length > 0) await run(t, 'create swap volumes', ['sh', '-c', SWAP_ALL, 'sh', String(sizeBytes), ...paths]);
  return paths.map((path) => ({ path, format: 'raw' }));
}

/**
 * Stage 4: arguments (path, bytes sent, size) per volume; stdin carries the bytes sent of each,
 * one after the other: a volume up to its last non-zero byte, the zeros after it (most of a
 * config disk) are written on the node from /dev/zero instead of crossing the connection. head -c
 * reads exactly that many bytes from the pipe; the size check catches a short stream.
 */
const CONFIG_ALL = `umask 022
while [ $# -ge 3 ]; do
  final=$1; sent=$2; size=$3; shift 3
  if ! { ${TMP_OF} &&
         head -c "$sent" > "$tmp" && head -c "$((size - sent))" /dev/zero >> "$tmp" &&
         [ "$(stat -c %s -- "$tmp")" = "$size" ] && mv -T -- "$tmp" "$final"; }; then
    rm -f -- "$tmp"; echo "writing $final failed" >&2; exit 1
  fi
done`;

export async function writeConfigFiles(t: Transport, items: readonly { path: string; bytes: Buffer; sizeBytes?: number }[]): Promise<VolumeInfo[]> {
  if (items.length === 0) return [];
  const args: string[] = [];
  const sent: Buffer[] = [];
  for (const { path, bytes, sizeBytes = bytes.length } of items) {
    if (!(sizeBytes >= bytes.length)) throw new Error(`config volume ${path}: ${bytes.length} bytes do not fit in ${sizeBytes}`);
    let end = bytes.length;
    while (end > 0 && bytes[end - 1] === 0) end--;
    args.push(path, String(end), String(sizeBytes));
    sent.push(bytes.subarray(0, end));
  }
  await run(t, 'write config volumes', ['sh', '-c', CONFIG_ALL, 'sh', ...args], { stdin: Buffer.concat(sent) });
  return items.map(({ path }) => ({ path, format: 'raw' }));
}

/** Whether each path exists (one round trip, builtins only). */
export async function pathsExist(t: Transport, paths: readonly string[]): Promise<boolean[]> {
  if (paths.length === 0) return [];
  const out = await run(t, 'look for volumes', ['sh', '-c', 'for p; do if [ -e "$p" ]; then echo 1; else echo 0; fi; done', 'sh', ...paths]);
  const lines = out.split('\n');
  return paths.map((_, i) => lines[i] === '1');
}

/**
 * Bytes used by each path, as treeBytes and allocatedBytes count them (du counts a file's
 * allocated blocks), in one du: NUL-terminated `BYTES<TAB>PATH` records, none for an absent path
 * (0, and du exits 1). -l: every path is counted in full, as separate du runs would.
 */
export async function pathsUsage(t: Transport, paths: readonly string[]): Promise<number[]> {
  if (paths.length === 0) return [];
  const r = await t.exec(['du', '-0', '-l', '-s', '-B1', '--', ...paths]);
  const got = new Map<string, number>();
  for (const rec of r.stdout.split('\0')) {
    const tab = rec.indexOf('\t');
    if (tab > 0) got.set(rec.slice(tab + 1), Number(rec.slice(0, tab)));
  }
  return paths.map((p) => got.get(p) ?? 0);
}

/** The batch form of a per-key method for drivers without a one-round-trip version: in order. */
export async function eachKey<K, R>(keys: readonly K[], f: (k: K) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (const k of keys) out.push(await f(k));
  return out;
}

/** The shared volume of an `nfs` VC: a directory (made atomically by mkdir -p). */
export async function createSharedDir(t: Transport, path: string): Promise<VolumeInfo> {
  await ensureDir(t, path);
  return { path, format: 'dir' };
}

/**
 * The per-node swap, config and shared volumes of the file-based drivers: plain files (or a
 * directory) named after the volume in the VC's directory.
 */
export abstract class FileVolumeDriverBase {
  constructor(readonly transport: Transport) {}

  pathOf(key: VolumeKey): string {
    return posix.join(key.vcDir, key.name);
  }

  createSwap(key: VolumeKey, sizeBytes: number): Promise<VolumeInfo> {
    return createSwapFile(this.transport, this.pathOf(key), sizeBytes);
  }

  writeConfig(key: VolumeKey, bytes: Buffer, sizeBytes?: number): Promise<VolumeInfo> {
    return writeConfigFile(this.transport, this.pathOf(key), bytes, sizeBytes);
  }

  createShared(key: VolumeKey): Promise<VolumeInfo> {
    return createSharedDir(this.transport, this.pathOf(key));
  }

  createSwapAll(keys: readonly VolumeKey[], sizeBytes: number): Promise<VolumeInfo[]> {
    return createSwapFiles(this.transport, keys.map((k) => this.pathOf(k)), sizeBytes);
  }

  writeConfigAll(items: readonly ConfigItem[]): Promise<VolumeInfo[]> {
    return writeConfigFiles(this.transport, items.map((i) => ({ path: this.pathOf(i.key), bytes: i.bytes, sizeBytes: i.sizeBytes })));
  }

  existsAll(keys: readonly VolumeKey[]): Promise<boolean[]> {
    return pathsExist(this.transport, keys.map((k) => this.pathOf(k)));
  }
}
