// The manager with the registry's controllers (GC + VirtualCluster) on the embedded store, with
// leader election on its leases: the same wiring vc-manager uses.

import assert from 'node:assert/strict';
import type { SqliteStore } from '../../api/store/sqlite-store.js';
import type { EventObject, VirtualCluster, VirtualNode } from '../../api/types.js';
import { getCondition } from '../../api/conditions.js';
import { ControllerManager } from '../../controllers/manager.js';
import { buildControllerSpecs } from '../../operator/registry.js';
import { TransportCache } from '../../drivers/transport/transport-for.js';
import { silentLogger } from '../../controllers/log.js';
import { StallingError, type ControllerSpec } from '../../controllers/types.js';
import { tempSqliteStore, virtualCluster, waitFor, type TempSqliteStore } from './helpers.js';

describe('ControllerManager on the embedded store', function () {
  this.timeout(60_000);
  let tmp: TempSqliteStore;
  let store: SqliteStore;
  let manager: ControllerManager;
  const log = silentLogger();

  const stalling: ControllerSpec = {
    name: 'test-stalling',
    forKind: 'OSTemplate',
    async reconcile(key) {
      throw new StallingError(`template ${key.name} names no image: set spec.image.path`, 'MissingImage');
    },
  };

  before(async () => {
    tmp = tempSqliteStore();
    store = tmp.store;
    manager = new ControllerManager({
      store, identity: 'test-manager', leaseTtlSeconds: 2, log,
      specs: (cache) => [...buildControllerSpecs({ cache, identity: 'test-manager', log, transports: new TransportCache() }, undefined, ['virtualcluster', 'garbage-collector']), stalling],
    });
    await manager.start();
    await waitFor('leadership and ready', () => manager.isLeader() && manager.isReady());
  });
  after(async () => {
    await manager?.stop();
    await tmp?.close();
  });

  const vns = async (vc: string) =>
    (await store.list<VirtualNode>('VirtualNode', { namespace: 'default', labelSelector: `virtualinux.org/cluster=${vc}` })).items
      .map((v) => v.metadata.name).sort();

  it('creates the VirtualNodes of a VC and reports them in its status', async () => {
    await store.create(virtualCluster('alpha', 3));
    await waitFor('3 nodes', async () => (await vns('alpha')).length === 3);
    assert.deepEqual(await vns('alpha'), ['alpha-0', 'alpha-1', 'alpha-2']);
    const vc = await waitFor('status', async () => {
      const v = await store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'default', name: 'alpha' });
      return v.status?.nodes?.length === 3 ? v : undefined;
    });
    assert.equal(vc.status?.phase, 'Pending');
    assert.equal(vc.status?.observedGeneration, 1);
    const ready = getCondition(vc.status?.conditions, 'Ready');
    assert.equal(ready?.status, 'False');
    assert.equal(ready?.observedGeneration, 1);
  });

  it('follows node phases to Running/Ready and scales down from the highest index', async () => {
    for (const n of await vns('alpha')) {
      const vn = await store.get<VirtualNode>({ kind: 'VirtualNode', namespace: 'default', name: n });
      // Running as the hypervisor says, and the guest reported in (the VC is Ready only then).
      await store.updateStatus({ ...vn, status: { phase: 'Running', ip: `10.0.0.${n.slice(-1)}`, conditions: [
        { type: 'GuestReady', status: 'True', reason: 'AgentReported', message: '', lastTransitionTime: new Date().toISOString(), observedGeneration: vn.metadata.generation },
      ] } });
    }
    await waitFor('Running', async () => {
      const v = await store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'default', name: 'alpha' });
      return v.status?.phase === 'Running' && getCondition(v.status.conditions, 'Ready')?.status === 'True';
    });
    const vc = await store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'default', name: 'alpha' });
    await store.update({ ...vc, spec: { ...vc.spec!, nodes: 1 } });
    await waitFor('scale down to 1', async () => (await vns('alpha')).join() === 'alpha-0');
    const after = await waitFor('status of 1', async () => {
      const v = await store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'default', name: 'alpha' });
      return v.status?.observedGeneration === 2 ? v : undefined;
    });
    assert.deepEqual(after.status?.nodes, [{ name: 'alpha-0', phase: 'Running', ip: '10.0.0.0' }]);
  });

  it('a terminal error sets Stalled and records one Warning Event, de-duplicated', async () => {
    await store.create({ apiVersion: 'virtualinux.org/v1alpha1', kind: 'OSTemplate', metadata: { name: 'broken' }, spec: { image: { path: '/images/none.qcow2' }, revision: 1 } });
    const t = await waitFor('Stalled', async () => {
      const o = await store.get<{ apiVersion: string; kind: string; metadata: { name: string }; status?: { conditions?: [] } }>({ kind: 'OSTemplate', name: 'broken' });
      const c = getCondition(o.status?.conditions, 'Stalled');
      return c?.status === 'True' ? c : undefined;
    });
    assert.equal(t.reason, 'MissingImage');
    assert.match(t.message, /set spec.image.path/);
    // Touch the object twice: each change is reconciled once more and stalls again.
    for (let i = 2; i <= 3; i++) {
      const o = await store.get({ kind: 'OSTemplate', name: 'broken' });
      await store.update({ ...o, spec: { image: { path: '/images/none.qcow2' }, revision: i } });
    }
    const ev = await waitFor('event count 3', async () => {
      await manager.flushEvents();
      const evs = (await store.list<EventObject>('Event', { namespace: 'default' })).items
        .filter((e) => e.spec?.involvedObject.name === 'broken');
      return evs.length === 1 && evs[0]!.spec!.count >= 3 ? evs[0] : undefined;
    });
    assert.equal(ev.spec?.type, 'Warning');
    assert.equal(ev.spec?.reason, 'MissingImage');
    assert.ok(ev.spec!.firstTimestamp <= ev.spec!.lastTimestamp);
  });

  it('deleting a VC removes its VirtualNodes (background propagation)', async () => {
    await store.create(virtualCluster('beta', 2));
    await waitFor('2 nodes', async () => (await vns('beta')).length === 2);
    await store.delete({ kind: 'VirtualCluster', namespace: 'default', name: 'beta' });
    await waitFor('nodes gone', async () => (await vns('beta')).length === 0);
  });

  it('stop() releases the lease at once', async () => {
    const key = manager.elector!.key;
    assert.ok(await store.leases.getRaw(key));
    await manager.stop();
    assert.equal(await store.leases.getRaw(key), undefined);
  });
});
