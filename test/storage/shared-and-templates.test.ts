// Template tarballs (real: tar + mkfs.ext4 -d, read back with debugfs) and the OCFS2 shared
// volume, which cannot run here (no OCFS2 tools or o2cb cluster stack): its mkfs.ocfs2 and mount
// commands are checked AGAINST RECORDED ARGUMENT VECTORS, everything else runs for real.

import assert from 'node:assert/strict';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { createSharedVolume, mountSharedOcfs2, unmountShared } from '../../drivers/storage/file-volumes.js';
import { Qcow2Driver } from '../../drivers/storage/qcow2-driver.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import type { ConnectTarget, ExecOptions, ExecResult, SpawnedProcess, Transport } from '../../drivers/transport/types.js';
import { listTree, makeTempDir, shOk } from './storage-fixtures.js';

const MiB = 1024 * 1024;

/** Answers mkfs.ocfs2 / mount / umount / mountpoint from a model of the host's mounts. */
class Ocfs2RecordingTransport implements Transport {
  readonly host = 'recorded-ocfs2';
  readonly recorded: string[][] = [];
  readonly mounts = new Map<string, string>();
  readonly formatted = new Set<string>();
  constructor(private readonly real: Transport) {}
  async exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    const ok: ExecResult = { code: 0, stdout: '', stderr: '' };
    switch (argv[0]) {
      case 'mkfs.ocfs2': {
        this.recorded.push([...argv]);
        const dev = argv[argv.length - 1]!;
        await stat(dev); // the image must exist, as for the real tool
        this.formatted.add(dev);
        return ok;
      }
      case 'mountpoint':
        return { ...ok, code: this.mounts.has(argv[argv.length - 1]!) ? 0 : 1 };
      case 'mount':
        this.recorded.push([...argv]);
        assert.deepEqual(argv.slice(0, 4), ['mount', '-t', 'ocfs2', '-o']);
        this.mounts.set(argv[6]!, argv[5]!);
        return ok;
      case 'umount':
        this.recorded.push([...argv]);
        this.mounts.delete(argv[1]!);
        return ok;
      default:
        return this.real.exec(argv, opts);
    }
  }
  spawn(argv: readonly string[], opts?: Omit<ExecOptions, 'stdin'>): SpawnedProcess {
    return this.real.spawn(argv, opts);
  }
  connect(t: ConnectTarget): Promise<Duplex> {
    return this.real.connect(t);
  }
  writeFile(p: string, d: string | Buffer, m?: number): Promise<void> {
    return this.real.writeFile(p, d, m);
  }
  close(): Promise<void> {
    return this.real.close();
  }
}

describe('templates from tarballs and OCFS2 shared volumes', function () {
  this.timeout(60_000);
  let dir: string;
  const real = new LocalTransport({ host: 'storage' });
  before(async () => {
    dir = await makeTempDir('vl-shared-');
  });
  after(async () => {
    await real.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('builds an original from a root-filesystem tarball (ext4 via mke2fs -d)', async () => {
    const rootfs = join(dir, 'rootfs');
    await mkdir(join(rootfs, 'etc'), { recursive: true });
    await writeFile(join(rootfs, 'etc', 'hostname'), 'template-host\n');
    const tarball = join(dir, 'rootfs.tar');
    await shOk(['tar', '-cf', tarball, '-C', rootfs, '.']);
    const driver = new Qcow2Driver(real);
    const vcDir = join(dir, 'vcs', 'default', 'tb-1');
    const o = await driver.createOriginal({ vcDir, vcUid: '1', name: 'tb-original' }, { tarball, sizeBytes: 32 * MiB });
    assert.equal(o.format, 'raw');
    assert.equal((await stat(o.path)).size, 32 * MiB);
    const content = await shOk(['debugfs', '-R', 'cat /etc/hostname', o.path]);
    assert.equal(content, 'template-host\n');
    assert.deepEqual(await listTree(vcDir), ['tb-original'], 'no scratch directory or temporary left');
  });

  it('formats an OCFS2 shared volume and mounts it once per host (recorded argv)', async () => {
    const t = new Ocfs2RecordingTransport(real);
    const vcDir = join(dir, 'vcs', 'default', 'oc-1');
    const path = join(vcDir, 'oc-shared');
    const info = await createSharedVolume(t, path, 64 * MiB, 'ocfs2', 'oc-shared');
    assert.deepEqual(info, { path, format: 'raw' });
    assert.equal((await stat(path)).size, 64 * MiB);
    assert.deepEqual(await listTree(vcDir), ['oc-shared']);
    await createSharedVolume(t, path, 64 * MiB, 'ocfs2', 'oc-shared');
    const mkfs = t.recorded.filter((a) => a[0] === 'mkfs.ocfs2');
    assert.equal(mkfs.length, 1, 'formatted once');
    assert.deepEqual(mkfs[0]!.slice(0, -1), ['mkfs.ocfs2', '-q', '-F', '-b', '4K', '-C', '4K', '-N', '8', '-L', 'oc-shared', '-T', 'vmstore']);
    assert.equal(mkfs[0]!.at(-1), join(vcDir, '.oc-shared.tmp'), 'formatted under the temporary name');
    const mnt = join(dir, 'mnt-oc');
    await mountSharedOcfs2(t, path, mnt);
    await mountSharedOcfs2(t, path, mnt);
    assert.equal(t.mounts.get(mnt), path);
    assert.equal(t.recorded.filter((a) => a[0] === 'mount').length, 1, 'mounted once');
    assert.deepEqual(t.recorded.find((a) => a[0] === 'mount'), ['mount', '-t', 'ocfs2', '-o', 'loop,_netdev', path, mnt]);
    await unmountShared(t, mnt);
    await unmountShared(t, mnt);
    assert.equal(t.mounts.size, 0);
    assert.equal(t.recorded.filter((a) => a[0] === 'umount').length, 1);
  });
});
