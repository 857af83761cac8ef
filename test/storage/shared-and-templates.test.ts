// Template tarballs, for real: tar + mkfs.ext4 -d, read back with debugfs. (The OCFS2 shared
// volume is the storage controller's on the SAN, ADR 0007: test/network/shared-fs-plan.test.ts
// and the full-node tests.)

import assert from 'node:assert/strict';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Qcow2Driver } from '../../drivers/storage/qcow2-driver.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { listTree, makeTempDir, shOk } from './storage-fixtures.js';

const MiB = 1024 * 1024;

describe('templates from tarballs', function () {
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
});
