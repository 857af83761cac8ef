// The lvm driver for real (tier: *.full.test.ts): LVM2 thin provisioning on the SAN disk of a full
// testbed node (a QEMU TCG machine running Xen with a Debian dom0), the storage driver conformance
// suite with every check made on the node's own devices (O_DIRECT). The recorded test
// (lvm-driver.recorded.test.ts) stays as the fast unit test of its argument vectors.
//
// One node: a thin pool may be active on one node at a time (its metadata is written by that
// node's kernel), so the lvm driver keeps the pool and its LVs on the storage node; ADR 0006 says
// why per-node activation across nodes is not offered for thin volumes.
// Needs root and the node image (built on first use, then cached).

import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { LvmDriver } from '../../drivers/storage/lvm-driver.js';
import { execOk } from '../../drivers/transport/types.js';
import { SAN_DEVICE } from '../../hack/lib/full-node.js';
import { describeDriverConformance } from './driver-conformance.js';
import { blockHolds, blockReadOnly, blockWrite, sanTestbedUp, type SanTestbed } from './san-testbed.js';
import { listTree } from './storage-fixtures.js';

const MiB = 1024 * 1024;

describe('lvm driver (thin) on the SAN disk of a full node', function () {
  this.timeout(900_000);
  let san: SanTestbed;

  before(async () => {
    const t0 = Date.now();
    san = await sanTestbedUp({ sanMiB: 2048, templateBytes: 64 * MiB, nodes: 1 });
    process.stderr.write(`      (full node up in ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  });
  after(async () => {
    await san?.down();
  });

  describeDriverConformance('lvm (thin pool on the SAN disk, full node)', async () => {
    const uid = randomUUID();
    const vcDir = join(san.tb.sanDir, 'vcs', 'default', `vc-${uid}`);
    const a = san.nodes[0]!;
    const driver = new LvmDriver(a, { vg: 'vlsan', thinPool: 'virtualinux', poolSizeBytes: 1024 * MiB, sanDevice: SAN_DEVICE });
    return {
      driver,
      vcDir,
      vcUid: uid,
      template: { path: san.template, format: 'qcow2' },
      templateBytes: san.templateBytes,
      write: (info, offset, byte) => blockWrite(a, info.path, offset, byte),
      holds: (info, offset, byte) => blockHolds(a, info.path, offset, byte),
      isReadOnly: (info) => blockReadOnly(a, info.path),
      isSwap: async (info) => (await execOk(a, ['blkid', '-p', '-o', 'value', '-s', 'TYPE', info.path], { timeoutMs: 180_000 })).trim() === 'swap',
      readConfig: (info) => readFile(info.path),
      listVolumes: async () => {
        const lvs = await execOk(a, ['lvs', '--noheadings', '-o', 'lv_name', 'vlsan'], { timeoutMs: 180_000 }).catch(() => '');
        return [...lvs.split('\n').map((l) => l.trim()).filter((l) => l.startsWith(uid)), ...(await listTree(vcDir))];
      },
      cleanup: async () => undefined,
    };
  }, 600_000);
});
