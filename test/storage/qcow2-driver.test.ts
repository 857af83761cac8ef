// The conformance suite on the real qcow2 driver: qemu-img overlays on a temporary storage root.

import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Qcow2Driver } from '../../drivers/storage/qcow2-driver.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { describeDriverConformance } from './driver-conformance.js';
import { hasSwapSignature, listTree, makeTemplate, makeTempDir, qemuHolds, qemuWrite } from './storage-fixtures.js';

const MiB = 1024 * 1024;

describeDriverConformance('qcow2 (real qemu-img)', async () => {
  const root = await makeTempDir('vl-qcow2-');
  const t = new LocalTransport({ host: 'storage' });
  const template = join(root, 'templates', 'base.qcow2');
  await import('node:fs/promises').then((fs) => fs.mkdir(join(root, 'templates'), { recursive: true }));
  await makeTemplate(template, 64 * MiB, 'qcow2');
  const vcDir = join(root, 'vcs', 'default', 'vc-0a1b');
  return {
    driver: new Qcow2Driver(t),
    vcDir,
    vcUid: '0a1b',
    template: { path: template, format: 'qcow2' },
    templateBytes: 64 * MiB,
    write: qemuWrite,
    holds: qemuHolds,
    isReadOnly: async (info) => ((await stat(info.path)).mode & 0o777) === 0o444,
    isSwap: (info) => hasSwapSignature(info.path),
    readConfig: (info) => readFile(info.path),
    listVolumes: () => listTree(vcDir),
    cleanup: async () => {
      await t.close();
      await rm(root, { recursive: true, force: true });
    },
  };
});
