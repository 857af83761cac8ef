// The storage side of the runtime's activation port, the parts that need no node: which driver
// settings come from the PhysicalNode (spec.sanDevice) and which VCs need a handover at a live
// migration's switchover.
// The mapping itself runs on full nodes (san-drivers.full.test.ts, "the runtime's activation port").

import assert from 'node:assert/strict';
import type { PhysicalNode, VirtualCluster } from '../../api/types.js';
import { driverOptionsFor, storageActivation, storageDriverOn } from '../../reconcilers/storage/activation.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';

const node = (sanDevice?: string): PhysicalNode => ({ metadata: { name: 'n1' }, spec: { storageRoot: '/srv', sanDevice } }) as unknown as PhysicalNode;
const vc = (storageDriver: string): VirtualCluster => ({ metadata: { name: 'vc', uid: 'u1' }, spec: { storageDriver } }) as unknown as VirtualCluster;

describe('storage activation: driver settings and the handover at a live migration', () => {
  it('the node\'s SAN disk reaches the evms and lvm drivers (lvm on the SAN VG unless a VG is configured); a configured device wins', () => {
    assert.deepEqual(driverOptionsFor(node('/dev/sdb'), undefined), { evms: { sanDevice: '/dev/sdb' }, lvm: { vg: 'vlsan', sanDevice: '/dev/sdb' } });
    assert.deepEqual(driverOptionsFor(node('/dev/sdb'), { lvm: { vg: 'v' } }), { lvm: { vg: 'v', sanDevice: '/dev/sdb' }, evms: { sanDevice: '/dev/sdb' } });
    assert.deepEqual(driverOptionsFor(node('/dev/sdb'), { evms: { vg: 'x', sanDevice: '/dev/sdc' } }), { evms: { vg: 'x', sanDevice: '/dev/sdc' }, lvm: { vg: 'vlsan', sanDevice: '/dev/sdb' } });
    assert.deepEqual(driverOptionsFor(node(), { lvm: { vg: 'v' } }), { lvm: { vg: 'v' } });
  });

  it('both SAN drivers have per-node activation, made on the VM\'s node with the node\'s SAN disk', () => {
    const t = new LocalTransport({ host: 'n1' });
    for (const d of ['evms', 'lvm']) {
      const driver = storageDriverOn(vc(d), node('/dev/sdb'), { get: () => t }, undefined);
      assert.equal(driver.transport, t);
      assert.ok(driver.activation, `${d} maps volumes per node`);
    }
    for (const d of ['qcow2', 'btrfs']) assert.equal(storageDriverOn(vc(d), node('/dev/sdb'), { get: () => t }, undefined).activation, undefined);
  });

  it('evms and lvm need the handover at the switchover; file-based drivers need nothing and map nothing', async () => {
    const t = new LocalTransport({ host: 'n1' });
    const act = storageActivation({ get: () => t });
    assert.deepEqual(['evms', 'lvm', 'qcow2', 'btrfs'].map((d) => act.needsHandOver!(vc(d))), [true, true, false, false]);
    // a handover asked of a driver without one is refused by name, before any node is asked
    await assert.rejects(act.prepareIncoming!(vc('qcow2'), { metadata: { name: 'vc-0' } } as never, node('/dev/sdb')), /qcow2 volumes cannot be handed over/);
    // qcow2: no NodeActivation, so nothing runs on the node (the transport would fail on /srv)
    await act.activate(vc('qcow2'), { metadata: { name: 'vc-0' } } as never, node(), () => 'refuse');
    await act.deactivate(vc('qcow2'), { metadata: { name: 'vc-0' } } as never, node());
    await t.close();
  });
});
