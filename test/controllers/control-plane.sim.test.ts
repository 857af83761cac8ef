// SIMULATION (sim hosts, drivers/transport/sim-*.ts: no guest, disk or packet is real): every
// controller vc-manager runs, in one manager on the embedded store, from VirtualClusters applied
// to every VM Running and every VC Ready, then a scale-down and a delete. It guards the wake-ups
// the scale work filtered (ControllerSpec.forSignature and ownedSignature, WatchSpec.signature,
// mapOnChange, the collector waking only owners being deleted, the deferred Reconciling):
// a change a controller needs and no longer sees leaves a VC short of Ready here. The real
// hypervisors and storage are exercised by the e2e tests; hack/bench-scale runs the same at size.

import assert from 'node:assert/strict';
import { getCondition } from '../../api/conditions.js';
import type { Store } from '../../api/store/types.js';
import type { EventObject, PhysicalNode, VirtualCluster, VirtualNode, Volume } from '../../api/types.js';
import { domainNameOf } from '../../api/names.js';
import { simWorld } from '../../drivers/transport/sim-host.js';
import { RUNTIME_FINALIZER } from '../../reconcilers/runtime/controller.js';
import { eventually } from '../placement/fixtures.js';
import { simNode, simVc, startSimControlPlane, type SimControlPlane } from './sim-control-plane.js';
import { recordHistory } from './history.js';

const NS = 'cp';
const vc = (name: string, nodes: number, subnet: string, strategy: 'Block' | 'Cyclic'): VirtualCluster => simVc(NS, name, nodes, subnet, strategy);

describe('the whole control plane on sim hosts (simulation only)', function () {
  this.timeout(180_000);
  let cp: SimControlPlane | undefined;
  let store: Store;

  before(async () => {
    cp = await startSimControlPlane('cp-sim', [1, 2, 3].map((i) => simNode(i)));
    store = cp.store;
  });
  after(async () => {
    await cp?.stop();
  });

  const vms = async () => (await store.list<VirtualNode>('VirtualNode', { namespace: NS })).items;
  const get = (name: string) => store.get<VirtualCluster>({ kind: 'VirtualCluster', name, namespace: NS });
  const ready = (name: string) => cp!.ready(NS, name);

  it('VCs applied: every VM Running where it is bound, every guest ready, every VC Ready with its gates True', async () => {
    // Every stored version of the VMs, to see which write first bound each.
    const history = recordHistory(store, ['VirtualNode'], (await store.list('VirtualNode')).revision + 1);
    try {
      await store.create(vc('a', 3, '10.30.0.0/29', 'Block'));
      await store.create(vc('b', 2, '10.30.0.8/29', 'Cyclic'));
      await eventually(async () => ((await ready('a')) && (await ready('b')) ? true : undefined), 150_000, 'both VCs Ready');
    } finally {
      history.stop();
    }
    const all = await vms();
    // The runtime's finalizer came with the binding (placement writes it when the manager runs
    // the runtime): no write of its own per VM.
    for (const v of all) {
      const bound = history.events.map((e) => e.object as VirtualNode).find((x) => x.metadata.name === v.metadata.name && x.spec?.physicalNode);
      assert.ok(bound?.metadata.finalizers?.includes(RUNTIME_FINALIZER), `${v.metadata.name}: bound with the runtime finalizer`);
    }
    assert.equal(all.length, 5);
    for (const v of all) {
      assert.equal(v.status?.phase, 'Running', v.metadata.name);
      assert.equal(v.status?.host, v.spec?.physicalNode, `${v.metadata.name} runs where it is bound`);
      assert.equal(getCondition(v.status?.conditions, 'GuestReady')?.status, 'True', v.metadata.name);
      assert.equal(getCondition(v.status?.conditions, 'Reconciling')?.status === 'True', false, `${v.metadata.name} left Reconciling`);
    }
    for (const name of ['a', 'b']) {
      const c = await get(name);
      for (const gate of ['Placed', 'StorageReady', 'NetworkReady']) assert.equal(getCondition(c.status?.conditions, gate)?.status, 'True', `${name} ${gate}`);
      assert.equal(getCondition(c.status?.conditions, 'Reconciling')?.status === 'True', false, `${name} left Reconciling`);
      assert.equal(c.status?.phase, 'Running');
      assert.deepEqual(c.status?.nodes?.map((n) => n.phase), Array(c.spec!.nodes).fill('Running'));
    }
    // Every node's allocation is what is bound to it.
    const nodes = (await store.list<PhysicalNode>('PhysicalNode')).items;
    for (const n of nodes) {
      assert.equal(n.status?.allocated?.vms ?? 0, all.filter((v) => v.spec?.physicalNode === n.metadata.name).length, n.metadata.name);
    }
  });

  it('a VM whose domain dies is noticed by its node\'s list (no per-VM poll), reported Failed with DomainDied, and started again', async () => {
    const vm = (await vms()).find((v) => v.metadata.name === 'a-0')!;
    const host = simWorld().hosts.get(vm.status!.host!)!;
    const domain = domainNameOf(vm);
    assert.equal(host.domains.get(domain)?.state, 'running');
    assert.ok(host.killDomain(domain));
    await eventually(async () => {
      const events = (await store.list<EventObject>('Event', { namespace: NS })).items;
      return events.some((e) => e.spec?.reason === 'DomainDied' && e.spec.involvedObject?.name === 'a-0') ? true : undefined;
    }, 60_000, 'a DomainDied event for a-0');
    await eventually(async () => {
      const v = await store.get<VirtualNode>({ kind: 'VirtualNode', name: 'a-0', namespace: NS });
      return v.status?.phase === 'Running' && (v.status.restarts ?? 0) >= 1 && host.domains.get(domain)?.state === 'running' ? true : undefined;
    }, 60_000, 'a-0 Running again after a restart');
  });

  it('a scale-down and a delete: the VMs, their volumes and the nodes\' allocations follow', async () => {
    const a = await get('a');
    await store.update({ ...a, spec: { ...a.spec!, nodes: 2 } });
    await eventually(async () => ((await vms()).some((v) => v.metadata.name === 'a-2') ? undefined : true), 60_000, 'a-2 gone');
    await eventually(async () => {
      const c = await get('a');
      return c.status?.nodes?.length === 2 && (await ready('a')) ? true : undefined;
    }, 60_000, 'a Ready with 2 nodes');
    await store.delete({ kind: 'VirtualCluster', name: 'b', namespace: NS });
    await eventually(async () => ((await vms()).every((v) => v.spec?.cluster === 'a') ? true : undefined), 60_000, 'b\'s VMs gone');
    await eventually(async () => {
      const vols = (await store.list<Volume>('Volume', { namespace: NS })).items;
      return vols.every((v) => v.spec?.cluster === 'a') ? true : undefined;
    }, 60_000, 'b\'s volumes gone');
    await eventually(async () => {
      const nodes = (await store.list<PhysicalNode>('PhysicalNode')).items;
      const bound = (await vms()).map((v) => v.spec?.physicalNode);
      return nodes.every((n) => (n.status?.allocated?.vms ?? 0) === bound.filter((b) => b === n.metadata.name).length) ? true : undefined;
    }, 60_000, 'allocations follow');
  });
});
