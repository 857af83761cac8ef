// The hypervisor driver factory (drivers/hypervisor/index.ts) and the runtime's per-node cache on
// top of it (reconcilers/runtime/hosts.ts): qemu nodes get a QemuDriver bound to the node's
// transport and settings, xen nodes a XenDriver. Nothing here runs a hypervisor.

import { strict as assert } from 'node:assert';
import type { PhysicalNode } from '../../api/types.js';
import { createHypervisorDriver } from '../../drivers/hypervisor/index.js';
import { QemuDriver } from '../../drivers/hypervisor/qemu-driver.js';
import { XenDriver } from '../../drivers/hypervisor/xen-driver.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { HypervisorDrivers } from '../../reconcilers/runtime/hosts.js';

function node(name: string, hypervisor: 'qemu' | 'xen', runRoot = '/tmp/vl-factory-run'): PhysicalNode {
  return {
    apiVersion: 'virtualinux.org/v1alpha1',
    kind: 'PhysicalNode',
    metadata: { name },
    spec: { address: '198.18.0.2', ssh: { port: 22, user: 'root', hostKey: 'k' }, capacity: { cores: 1, memoryMiB: 512 }, hypervisor, storageRoot: '/srv', runRoot },
  };
}

describe('hypervisor driver factory', () => {
  const transport = new LocalTransport({ host: 'n1' });

  it('makes a QemuDriver for qemu, bound to the given transport', () => {
    const d = createHypervisorDriver('qemu', { transport, runRoot: '/tmp/vl-factory-run', migrationAddress: '127.0.0.1', accel: 'tcg' });
    assert.ok(d instanceof QemuDriver);
    assert.equal(d.kind, 'qemu');
    assert.equal(d.transport, transport);
    assert.equal(d.node, 'n1');
  });

  it('makes a XenDriver for xen, bound to the given transport, run root and migration address', () => {
    const d = createHypervisorDriver('xen', { transport, runRoot: '/tmp/vl-factory-run/', migrationAddress: '198.18.0.9' });
    assert.ok(d instanceof XenDriver);
    assert.equal(d.kind, 'xen');
    assert.equal(d.transport, transport);
    assert.equal(d.runRoot, '/tmp/vl-factory-run');
    assert.equal(d.migrationAddress, '198.18.0.9');
    assert.equal(d.blockScript, '/tmp/vl-factory-run/vl-block');
  });

  it('the runtime keeps one driver per node, remade when settings change, of the node\'s kind', () => {
    const drivers = new HypervisorDrivers({ get: () => transport }, 'tcg');
    const first = drivers.get(node('pn-1', 'qemu'));
    assert.equal(drivers.get(node('pn-1', 'qemu')), first, 'same settings: same driver');
    assert.notEqual(drivers.get(node('pn-1', 'qemu', '/tmp/vl-factory-other')), first, 'runRoot changed: new driver');
    const xen = drivers.get(node('pn-x', 'xen'));
    assert.ok(xen instanceof XenDriver);
    assert.notEqual(drivers.get(node('pn-x', 'qemu')), xen, 'hypervisor changed: new driver');
  });
});
