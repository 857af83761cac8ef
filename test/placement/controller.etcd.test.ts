// The placement controllers on a real etcd: 20 VCs applied at once onto capacity for only some
// of them, placed by TWO managers racing (no leader election, separate caches), so only the
// resourceVersion checks of the binding batch stand between them and an overcommitted node.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { EtcdStore } from '../../api/store/etcd-store.js';
import type { PhysicalNode, VirtualCluster, VirtualNode } from '../../api/types.js';
import { ControllerManager } from '../../controllers/manager.js';
import { startEtcd, type EtcdHarness } from '../../hack/lib/etcd-harness.js';
import { placementControllers } from '../../reconcilers/placement/controller.js';
import { virtualClusterController } from '../../reconcilers/virtualcluster/controller.js';
import { boundUsage, eventually, physicalNode, virtualCluster } from './fixtures.js';

describe('placement controller on a real etcd', function () {
  this.timeout(90_000);
  let etcd: EtcdHarness | undefined;
  const stores: EtcdStore[] = [];
  const managers: ControllerManager[] = [];

  before(async () => {
    etcd = await startEtcd();
  });
  afterEach(async () => {
    for (const m of managers.splice(0)) await m.stop();
    for (const s of stores.splice(0)) await s.close();
  });
  after(async () => {
    await etcd?.stop();
  });

  async function connect(prefix: string): Promise<EtcdStore> {
    const s = await EtcdStore.connect({ endpoints: etcd!.endpoints, prefix });
    stores.push(s);
    return s;
  }

  it('20 VCs at once: the ones that fit are placed, no node is overcommitted, the others are Unschedulable', async () => {
    const prefix = `/t-${randomBytes(4).toString('hex')}`;
    const store = await connect(prefix);
    // 4 nodes x 4 cores: room for 8 VCs of 2 one-vCPU VMs in Strict mode (memory is plentiful).
    for (let i = 1; i <= 4; i++) await store.create(physicalNode(`blade${i}`, 4, 16384));
    await store.create(physicalNode('blade5', 64, 65536, { unschedulable: true }));
    for (let m = 0; m < 2; m++) {
      const mgr = new ControllerManager({
        store: await connect(prefix),
        specs: (cache) => [virtualClusterController(), ...placementControllers(cache)],
        identity: `m${m}`,
        leaderElection: false,
        eventCleanupMs: 0,
      });
      managers.push(mgr);
      await mgr.start();
    }
    await Promise.all(Array.from({ length: 20 }, (_, i) =>
      store.create(virtualCluster(`vc${i}`, 2, 1, 1024, i % 2 ? 'Cyclic' : 'Block', 'Strict'))));

    const settled = await eventually(async () => {
      const vcs = (await store.list<VirtualCluster>('VirtualCluster')).items;
      const placed = vcs.map((vc) => vc.status?.conditions?.find((c) => c.type === 'Placed'));
      if (placed.some((c) => !c || (c.reason !== 'Placed' && c.reason !== 'Unschedulable'))) return undefined;
      if (placed.filter((c) => c!.reason === 'Placed').length < 8) return undefined;
      return vcs;
    }, 60_000, 'every VC to be Placed or Unschedulable').catch(async (err) => {
      const vcs = (await store.list<VirtualCluster>('VirtualCluster')).items;
      console.error(JSON.stringify(vcs.map((v) => [v.metadata.name, v.status]), null, 0).slice(0, 3000));
      console.error((await store.list<VirtualNode>('VirtualNode')).items.length);
      throw err;
    });

    const vns = (await store.list<VirtualNode>('VirtualNode')).items;
    const pns = (await store.list<PhysicalNode>('PhysicalNode')).items;
    const used = await boundUsage(store);
    for (const pn of pns) {
      const u = used.get(pn.metadata.name) ?? { cores: 0, memoryMiB: 0, vms: 0 };
      assert.ok(u.cores <= pn.spec!.capacity.cores, `${pn.metadata.name} overcommitted: ${u.cores} cores`);
      assert.ok(u.memoryMiB <= pn.spec!.capacity.memoryMiB);
    }
    assert.equal(used.get('blade5'), undefined, 'a cordoned node got VMs');
    const placedVCs = settled.filter((vc) => vc.status!.conditions!.find((c) => c.type === 'Placed')!.status === 'True');
    assert.equal(placedVCs.length, 8);
    for (const vc of settled) {
      const mine = vns.filter((v) => v.spec!.cluster === vc.metadata.name);
      const bound = mine.filter((v) => v.spec!.physicalNode).length;
      const cond = vc.status!.conditions!.find((c) => c.type === 'Placed')!;
      assert.equal(cond.observedGeneration, vc.metadata.generation);
      if (cond.status === 'True') {
        assert.equal(bound, 2);
        assert.deepEqual(vc.status!.placement, vc.spec!.placement);
      } else {
        assert.equal(bound, 0, `${vc.metadata.name} is Unschedulable but has bound VMs`);
        assert.equal(cond.reason, 'Unschedulable');
        assert.match(cond.message, /blade1: insufficient cores \(Strict: free 0, need 1\)/);
        assert.match(cond.message, /blade5: cordoned/);
      }
    }
    // The allocation each node records is exactly what is bound to it.
    await eventually(async () => {
      const now = (await store.list<PhysicalNode>('PhysicalNode')).items;
      const u = await boundUsage(store);
      for (const pn of now) {
        const want = u.get(pn.metadata.name) ?? { cores: 0, memoryMiB: 0, vms: 0 };
        const got = pn.status?.allocated ?? { cores: 0, memoryMiB: 0, vms: 0 };
        if (JSON.stringify(want) !== JSON.stringify(got)) return undefined;
      }
      return true;
    }, 20_000, 'status.allocated to equal what is bound');

    // Deleting placed VCs frees their room (VMs deleted), and the waiting VCs get it. The VC goes
    // first, then its VMs (the order of a cascading delete; no garbage collector runs here): the
    // other way round, the VirtualCluster controller could make the VMs again for the VC still
    // there, placement bind them, and their room stay taken by VMs of a deleted VC.
    for (const vc of placedVCs.slice(0, 2)) {
      await store.delete({ kind: 'VirtualCluster', name: vc.metadata.name, namespace: vc.metadata.namespace });
      for (const vn of vns.filter((v) => v.spec!.cluster === vc.metadata.name)) {
        await store.delete({ kind: 'VirtualNode', name: vn.metadata.name, namespace: vn.metadata.namespace });
      }
    }
    await eventually(async () => {
      const vcs = (await store.list<VirtualCluster>('VirtualCluster')).items;
      const n = vcs.filter((vc) => vc.status?.conditions?.find((c) => c.type === 'Placed')?.status === 'True').length;
      return n === 8 ? true : undefined;
    }, 60_000, 'two waiting VCs to take the freed room');
    const after = await boundUsage(store);
    for (let i = 1; i <= 4; i++) assert.ok((after.get(`blade${i}`)?.cores ?? 0) <= 4);
  });
});
