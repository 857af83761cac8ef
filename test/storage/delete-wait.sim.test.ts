// SIMULATION (a sim storage node, drivers/transport/sim-*.ts): a VirtualCluster being deleted
// whose VMs still run waits for them without looking at its storage, and its volumes go once they
// stop. A look every 2 s of every such VC (its volumes read from the store, an `exists` on the
// storage node) was most of the manager while a delete of 750 VCs stopped their 3,000 VMs:
// 2,400 store reads a second (hack/bench-scale, session 14). Counted here: the sim node's
// `vl-sim volume exists` and `remove` calls while the VM runs, and after it stopped.

import assert from 'node:assert/strict';
import { getCondition } from '../../api/conditions.js';
import type { Store } from '../../api/store/types.js';
import { CLUSTER_LABEL } from '../../api/labels.js';
import { API_VERSION, type VirtualCluster, type VirtualNode } from '../../api/types.js';
import { planDeletionWait } from '../../reconcilers/storage/plan.js';
import { eventually } from '../placement/fixtures.js';
import { storageVc } from './storage-fixtures-objects.js';
import { startSimStorage, type SimStorage } from './sim-storage-node.js';

const ROOT = '/san-storage-delete-wait';
const WINDOW_MS = 5_000;

describe('storage: a VC being deleted waits for its VMs without looking at its storage (sim node)', function () {
  this.timeout(120_000);
  let store: Store;
  let sim: SimStorage;
  const calls = { exists: 0, remove: 0 };
  const ref = { kind: 'VirtualCluster', namespace: 'default', name: 'dw' };
  const vmRef = { kind: 'VirtualNode', namespace: 'default', name: 'dw-0' };

  before(async () => {
    // The sim node's volume calls counted.
    sim = await startSimStorage('dw-sim1', '198.18.9.43', ROOT, (argv) => {
      if (argv[0] === 'vl-sim' && argv[1] === 'volume' && (argv[2] === 'exists' || argv[2] === 'remove')) calls[argv[2]]++;
    });
    store = sim.store;
  });
  after(async () => {
    await sim?.stop();
  });

  it('planDeletionWait: only a VC being deleted, with the storage finalizer and active VMs, waits', () => {
    const vc = storageVc('x', 1, 'busybox');
    const deleting = { ...vc, metadata: { ...vc.metadata, deletionTimestamp: new Date(0).toISOString(), finalizers: ['virtualinux.org/storage'] } };
    assert.equal(planDeletionWait(vc, true), undefined);
    assert.equal(planDeletionWait(deleting, false), undefined);
    assert.equal(planDeletionWait({ ...deleting, metadata: { ...deleting.metadata, finalizers: [] } }, true), undefined);
    assert.equal(planDeletionWait(deleting, true)?.conditions[0]?.reason, 'Deleting');
  });

  it('looks at nothing while the VM runs, removes the volumes once it stopped', async () => {
    const vc = await store.create<VirtualCluster>(storageVc('dw', 1, 'busybox', { sharedStorage: { sizeGiB: 0, filesystem: 'none' } }));
    await store.updateStatus<VirtualCluster>({ ...vc, status: { subnet: '10.10.1.0/24' } });
    const vm = await store.create<VirtualNode>({
      apiVersion: API_VERSION, kind: 'VirtualNode',
      metadata: { name: 'dw-0', namespace: 'default', labels: { [CLUSTER_LABEL]: 'dw' } },
      spec: { cluster: 'dw', index: 0, vcpus: 1, memoryMiB: 128, physicalNode: 'dw-sim1' },
    });
    await store.updateStatus<VirtualNode>({ ...vm, status: { phase: 'Running', host: 'dw-sim1' } });
    const storageReady = async () => getCondition((await store.tryGet<VirtualCluster>(ref))?.status?.conditions, 'StorageReady');
    await eventually(async () => ((await storageReady())?.status === 'True' ? true : undefined), 60_000, 'StorageReady');

    await store.delete(ref);
    await eventually(async () => ((await storageReady())?.reason === 'Deleting' ? true : undefined), 10_000, 'StorageReady False/Deleting');
    const before = { ...calls };
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    console.log(`      while the VM runs, ${WINDOW_MS} ms: ${calls.exists - before.exists} exists, ${calls.remove - before.remove} remove calls`);
    assert.equal(calls.remove, 0, 'no volume is removed under a running VM');
    assert.equal(calls.exists - before.exists, 0, 'the storage is not looked at while the VM runs');
    assert.ok(await store.tryGet(ref), 'the VC waits for its VM');

    const running = await store.get<VirtualNode>(vmRef);
    await store.updateStatus<VirtualNode>({ ...running, status: { ...running.status, phase: 'Stopped' } });
    await eventually(async () => ((await store.tryGet(ref)) ? undefined : true), 30_000, 'the VC gone');
    assert.ok(calls.remove >= 1, 'its volumes were removed once the VM stopped');
    assert.equal((await store.list('Volume', { namespace: 'default' })).items.length, 0, 'no Volume object is left');
  });
});
