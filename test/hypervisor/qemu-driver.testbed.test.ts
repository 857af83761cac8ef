// The conformance suite across two testbed nodes (network namespaces with a real sshd each):
// every command and QMP connection goes over SshTransport, live migration crosses the testbed
// bridge from one node's address to the other's, and the disks and state files live on the SAN
// directory both nodes see.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QemuDriver } from '../../drivers/hypervisor/qemu-driver.js';
import { SshTransport } from '../../drivers/transport/ssh-transport.js';
import { testbedDown, testbedUp, type TestbedNode } from '../../hack/lib/testbed.js';
import { describeHypervisorConformance } from './driver-conformance.js';
import { qemuAlive, qemuCapabilities } from './qemu-conformance.js';

describeHypervisorConformance('QemuDriver conformance (two testbed nodes over SSH)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vc-hvtb-'));
  try {
    const tb = await testbedUp({ nodes: 2, dir });
    const node = (n: TestbedNode): QemuDriver =>
      new QemuDriver({
        transport: new SshTransport({ host: n.name, address: n.address, port: n.port, user: 'root', identityFile: tb.identityFile, hostKey: n.hostKey }),
        runRoot: join(n.stateDir, 'run'),
        migrationAddress: n.address,
        accel: 'tcg',
      });
    const a = node(tb.nodes[0]!);
    const b = node(tb.nodes[1]!);
    return {
      a,
      b,
      san: tb.sanDir,
      alive: qemuAlive,
      teardown: async () => {
        await a.transport.close();
        await b.transport.close();
        await testbedDown(dir);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await testbedDown(dir).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}, qemuCapabilities);
