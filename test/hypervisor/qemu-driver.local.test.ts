// The conformance suite on two "nodes" of this machine reached through LocalTransport (two run
// roots, migration over loopback). The same suite runs across testbed nodes over SSH in
// qemu-driver.testbed.test.ts.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QemuDriver } from '../../drivers/hypervisor/qemu-driver.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { describeHypervisorConformance } from './driver-conformance.js';
import { qemuAlive, qemuCapabilities } from './qemu-conformance.js';

describeHypervisorConformance('QemuDriver conformance (two local nodes, LocalTransport)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vc-hv-'));
  const node = (n: string): QemuDriver =>
    new QemuDriver({ transport: new LocalTransport({ host: n }), runRoot: join(dir, n, 'run'), migrationAddress: '127.0.0.1', accel: 'tcg' });
  const a = node('node-a');
  const b = node('node-b');
  return {
    a,
    b,
    san: join(dir, 'san'),
    alive: qemuAlive,
    teardown: async () => {
      await a.transport.close();
      await b.transport.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}, qemuCapabilities);
