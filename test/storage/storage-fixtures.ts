// Fixtures for the storage tests: temporary directories, a loop-mounted btrfs, and qemu-io based
// content checks. Everything made here is torn down by the returned cleanup functions, which the
// tests call from after hooks (also when a test failed).

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { promisify } from 'node:util';
import { getCondition } from '../../api/conditions.js';
import type { Store } from '../../api/store/types.js';
import type { Condition, VirtualCluster } from '../../api/types.js';
import type { VolumeInfo } from '../../drivers/storage/types.js';
import type { ConnectTarget, ExecOptions, ExecResult, SpawnedProcess, Transport } from '../../drivers/transport/types.js';

const pexec = promisify(execFile);

export async function sh(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await pexec(argv[0]!, argv.slice(1), { maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : 1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

export async function shOk(argv: string[]): Promise<string> {
  const r = await sh(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

export async function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export interface LoopBtrfs {
  mountPoint: string;
  device: string;
  cleanup(): Promise<void>;
}

/** A sparse file of `sizeBytes` on a loop device, formatted btrfs and mounted under a temp dir. */
export async function mountLoopFs(sizeBytes: number, fs: 'btrfs' | 'ext4' = 'btrfs'): Promise<LoopBtrfs> {
  const base = await makeTempDir(`vl-${fs}-`);
  const img = join(base, 'fs.img');
  const mountPoint = join(base, 'mnt');
  let device = '';
  let mounted = false;
  const cleanup = async (): Promise<void> => {
    if (mounted) await sh(['umount', mountPoint]);
    if (device) await sh(['losetup', '-d', device]);
    await rm(base, { recursive: true, force: true });
  };
  try {
    await shOk(['truncate', '-s', String(sizeBytes), img]);
    device = (await shOk(['losetup', '--find', '--show', img])).trim();
    if (fs === 'btrfs') await shOk(['mkfs.btrfs', '-q', '-f', device]);
    else await shOk(['mkfs.ext4', '-q', '-F', device]);
    await shOk(['mkdir', '-p', mountPoint]);
    await shOk(['mount', device, mountPoint]);
    mounted = true;
  } catch (e) {
    await cleanup();
    throw e;
  }
  return { mountPoint, device, cleanup };
}

/** A template image of `bytes` (qcow2 or raw) whose every byte is 0x11: really allocated. */
export async function makeTemplate(path: string, bytes: number, format: 'qcow2' | 'raw'): Promise<void> {
  await shOk(['qemu-img', 'create', '-q', '-f', format, path, String(bytes)]);
  await shOk(['qemu-io', '-f', format, '-c', `write -P 0x11 0 ${bytes}`, path]);
}

export async function qemuWrite(info: VolumeInfo, offset: number, byte: number): Promise<void> {
  await shOk(['qemu-io', '-f', info.format, '-c', `write -P ${byte} ${offset} 64k`, info.path]);
}

export async function qemuHolds(info: VolumeInfo, offset: number, byte: number): Promise<boolean> {
  const r = await sh(['qemu-io', '-f', info.format, '-r', '-U', '-c', `read -P ${byte} ${offset} 64k`, info.path]);
  return r.code === 0 && !/verification failed/.test(r.stdout + r.stderr);
}

export async function hasSwapSignature(path: string): Promise<boolean> {
  const buf = await readFile(path);
  const pageSig = buf.subarray(4096 - 10, 4096).toString('latin1');
  return pageSig === 'SWAPSPACE2';
}

/** Every entry under dir (recursively, names relative), for leak checks. */
export async function listTree(dir: string): Promise<string[]> {
  try {
    const out: string[] = [];
    for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
      out.push(join(e.parentPath ?? (e as unknown as { path: string }).path, e.name).slice(dir.length + 1));
    }
    return out.sort();
  } catch {
    return [];
  }
}

/**
 * A storage node that fails on cue: every operation (exec, spawn, writeFile; counted from 1 in
 * `steps`) goes to `real` unless `fault(step, argv)` returns an error, which it throws instead, as
 * a transport that cannot reach the node does. writeFile counts as the argv [path].
 */
export class FaultyTransport implements Transport {
  steps = 0;
  constructor(
    private readonly real: Transport,
    private readonly fault: (step: number, argv: readonly string[]) => Error | undefined,
    readonly host = real.host,
  ) {}
  private step(argv: readonly string[]): void {
    const e = this.fault(++this.steps, argv);
    if (e) throw e;
  }
  async exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    this.step(argv);
    return this.real.exec(argv, opts);
  }
  spawn(argv: readonly string[], opts?: Omit<ExecOptions, 'stdin'>): SpawnedProcess {
    this.step(argv);
    return this.real.spawn(argv, opts);
  }
  connect(t: ConnectTarget): Promise<Duplex> {
    return this.real.connect(t);
  }
  async writeFile(path: string, data: string | Buffer, mode?: number): Promise<void> {
    this.step([path]);
    return this.real.writeFile(path, data, mode);
  }
  async close(): Promise<void> {}
}

/**
 * Every StorageReady the VirtualCluster default/`name` shows from now on, one per stored revision
 * as the store's watch delivers them (a poll could miss a short flip). close() ends the watch.
 */
export async function recordStorageReady(store: Store, name: string): Promise<{ seen: Condition[]; close(): void }> {
  const seen: Condition[] = [];
  const watch = store.watch<VirtualCluster>('VirtualCluster', { namespace: 'default', fromRevision: (await store.revision()) + 1 }, {
    onEvent: (ev) => {
      const c = getCondition(ev.object.status?.conditions, 'StorageReady');
      if (ev.object.metadata.name === name && c) seen.push(c);
    },
    onError: () => undefined,
  });
  return { seen, close: () => watch.close() };
}
