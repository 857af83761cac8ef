// The conformance suite on the real btrfs driver: subvolume snapshots on a loop-mounted btrfs.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BtrfsDriver } from '../../drivers/storage/btrfs-driver.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { describeDriverConformance } from './driver-conformance.js';
import { hasSwapSignature, listTree, makeTemplate, mountLoopFs, qemuHolds, qemuWrite, sh, shOk } from './storage-fixtures.js';

const MiB = 1024 * 1024;

describeDriverConformance('btrfs (real, loop-mounted)', async () => {
  const fs = await mountLoopFs(512 * MiB, 'btrfs');
  const t = new LocalTransport({ host: 'storage' });
  try {
    const root = fs.mountPoint;
    await shOk(['mkdir', '-p', join(root, 'templates')]);
    const template = join(root, 'templates', 'base.raw');
    await makeTemplate(template, 64 * MiB, 'raw');
    const vcDir = join(root, 'vcs', 'default', 'vc-0a1b');
    return {
      driver: new BtrfsDriver(t),
      vcDir,
      vcUid: '0a1b',
      template: { path: template, format: 'raw' },
      templateBytes: 64 * MiB,
      write: qemuWrite,
      holds: qemuHolds,
      // Read-only for root too: the subvolume refuses the write (EROFS).
      isReadOnly: async (info) => {
        const prop = await shOk(['btrfs', 'property', 'get', '-ts', join(info.path, '..'), 'ro']);
        const w = await sh(['qemu-io', '-f', info.format, '-c', 'write -P 0x99 0 64k', info.path]);
        return prop.trim() === 'ro=true' && w.code !== 0;
      },
      isSwap: (info) => hasSwapSignature(info.path),
      readConfig: (info) => readFile(info.path),
      listVolumes: () => listTree(vcDir),
      cleanup: async () => {
        await t.close();
        await fs.cleanup();
      },
    };
  } catch (e) {
    await t.close();
    await fs.cleanup();
    throw e;
  }
});
