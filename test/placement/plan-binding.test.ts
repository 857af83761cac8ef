// planBinding: what the placement controller does next, decided without I/O.

import assert from 'node:assert/strict';
import type { PhysicalNode, VirtualCluster, VirtualNode, VNPhase } from '../../api/types.js';
import { computeAllocation, MIGRATION_APPLIED, migrationReserves } from '../../reconcilers/placement/allocation.js';
import { planBinding, type NodeView } from '../../reconcilers/placement/plan-binding.js';
import { physicalNode, virtualCluster, virtualNode } from './fixtures.js';

function withAlloc(pn: PhysicalNode, cores: number, memoryMiB: number, vms: number): PhysicalNode {
  return { ...pn, status: { ...pn.status, allocated: { cores, memoryMiB, vms } } };
}
function bound(vn: VirtualNode, node: string, phase?: VNPhase): VirtualNode {
  return { ...vn, spec: { ...vn.spec!, physicalNode: node }, status: phase ? { phase } : undefined };
}
function applied(vc: VirtualCluster, strategy: 'Block' | 'Cyclic', mode: 'Strict' | 'Lazy'): VirtualCluster {
  return { ...vc, metadata: { ...vc.metadata, generation: 2 }, status: { placement: { strategy, mode } } };
}

describe('planBinding', () => {
  const pns = [physicalNode('blade1', 4, 8192), physicalNode('blade2', 4, 8192)];

  it('waits until every VirtualNode exists', () => {
    const vc = virtualCluster('s', 3, 1, 1024);
    const d = planBinding(vc, [virtualNode(vc, 0), virtualNode(vc, 1)], pns);
    assert.equal(d.kind, 'none');
    assert.equal(d.condition.reason, 'WaitingForVirtualNodes');
    assert.equal(d.condition.status, 'False');
  });

  it('binds all VMs at once and moves the allocations', () => {
    const vc = virtualCluster('s', 3, 1, 1024, 'Cyclic');
    const d = planBinding(vc, [0, 1, 2].map((i) => virtualNode(vc, i)), pns);
    assert.equal(d.kind, 'bind');
    if (d.kind !== 'bind') return;
    assert.deepEqual(d.binds.map((b) => [b.vn.metadata.name, b.node]), [['s-0', 'blade1'], ['s-1', 'blade2'], ['s-2', 'blade1']]);
    assert.deepEqual(Object.fromEntries(d.deltas), {
      blade1: { cores: 2, memoryMiB: 2048, vms: 2 }, blade2: { cores: 1, memoryMiB: 1024, vms: 1 },
    });
    assert.deepEqual(d.applied, { strategy: 'Cyclic', mode: 'Strict' });
    assert.equal(d.condition.reason, 'Placed');
  });

  it('counts the allocation of other VCs: Unschedulable with the per-node message, nothing bound', () => {
    const vc = virtualCluster('s', 3, 1, 1024);
    const d = planBinding(vc, [0, 1, 2].map((i) => virtualNode(vc, i)), [withAlloc(pns[0]!, 3, 1024, 3), withAlloc(pns[1]!, 4, 1024, 4)]);
    assert.equal(d.kind, 'none');
    assert.equal(d.condition.reason, 'Unschedulable');
    assert.match(d.condition.message!, /blade1: room for 1 VM, then insufficient cores \(Strict: free 0, need 1\); blade2: insufficient cores/);
  });

  it('a scale-up places only the new VMs and keeps the bound ones', () => {
    const vc = applied(virtualCluster('s', 3, 1, 1024), 'Block', 'Strict');
    const vns = [bound(virtualNode(vc, 0), 'blade2'), bound(virtualNode(vc, 1), 'blade2'), virtualNode(vc, 2)];
    const d = planBinding(vc, vns, [pns[0]!, withAlloc(pns[1]!, 2, 2048, 2)]);
    assert.equal(d.kind, 'bind');
    if (d.kind === 'bind') assert.deepEqual(d.binds.map((b) => [b.vn.metadata.name, b.node]), [['s-2', 'blade1']]);
  });

  it('everything bound: Placed, nothing to do', () => {
    const vc = applied(virtualCluster('s', 2, 1, 1024), 'Block', 'Strict');
    const d = planBinding(vc, [bound(virtualNode(vc, 0), 'blade1'), bound(virtualNode(vc, 1), 'blade1')], pns);
    assert.equal(d.kind, 'none');
    assert.deepEqual(d.condition, { type: 'Placed', status: 'True', reason: 'Placed', message: '2 VMs on 1 node (Block, Strict)' });
  });

  it('a placement change while VMs run waits: RemapPending, the old placement stays applied', () => {
    const vc = applied(virtualCluster('s', 2, 1, 1024, 'Cyclic', 'Strict'), 'Block', 'Strict');
    const vns = [bound(virtualNode(vc, 0), 'blade1', 'Running'), bound(virtualNode(vc, 1), 'blade1', 'Running')];
    const d = planBinding(vc, vns, [withAlloc(pns[0]!, 2, 2048, 2), pns[1]!]);
    assert.equal(d.kind, 'none');
    assert.equal(d.condition.reason, 'RemapPending');
    assert.deepEqual(d.applied, { strategy: 'Block', mode: 'Strict' });
  });

  it('a placement change while Suspended re-places the whole VC, counting its own room as free', () => {
    const vc = applied(virtualCluster('s', 2, 1, 1024, 'Cyclic', 'Strict', 'Suspended'), 'Block', 'Strict');
    const vns = [bound(virtualNode(vc, 0), 'blade1', 'Suspended'), bound(virtualNode(vc, 1), 'blade1', 'Suspended')];
    // blade1 is full with this VC's two VMs and two of another VC's.
    const d = planBinding(vc, vns, [withAlloc(pns[0]!, 4, 4096, 4), pns[1]!]);
    assert.equal(d.kind, 'bind');
    if (d.kind !== 'bind') return;
    assert.deepEqual(d.binds.map((b) => [b.vn.metadata.name, b.node]), [['s-1', 'blade2']]);
    assert.deepEqual(Object.fromEntries(d.deltas), {
      blade1: { cores: -1, memoryMiB: -1024, vms: -1 }, blade2: { cores: 1, memoryMiB: 1024, vms: 1 },
    });
    assert.deepEqual(d.applied, { strategy: 'Cyclic', mode: 'Strict' });
  });

  it('a re-placement that does not fit keeps the binding: Unschedulable', () => {
    const vc = applied(virtualCluster('s', 2, 2, 1024, 'Block', 'Strict', 'Stopped'), 'Block', 'Lazy');
    const vns = [bound(virtualNode(vc, 0), 'blade1', 'Stopped'), bound(virtualNode(vc, 1), 'blade1', 'Stopped')];
    const d = planBinding(vc, vns, [withAlloc(physicalNode('blade1', 2, 8192), 4, 2048, 2)]);
    assert.equal(d.kind, 'none');
    assert.equal(d.condition.reason, 'Unschedulable');
    assert.match(d.condition.message!, /^cannot re-place with Block\/Strict, the VMs stay where they are: /);
    assert.deepEqual(d.applied, { strategy: 'Block', mode: 'Lazy' });
  });
});

describe('computeAllocation', () => {
  const vc = virtualCluster('s', 2, 2, 1024);
  const mig = (phase?: 'Failed' | 'Succeeded', appliedMark = false) => ({
    apiVersion: 'virtualinux.org/v1alpha1', kind: 'Migration' as const,
    metadata: { name: 'm', namespace: 'default', ...(appliedMark ? { annotations: { [MIGRATION_APPLIED]: 'true' } } : {}) },
    spec: { virtualNode: 's-0', targetNode: 'blade2' },
    status: phase ? { phase } : undefined,
  });

  it('counts bound VMs and Migrations in flight onto the node', () => {
    const vns = [bound(virtualNode(vc, 0), 'blade1'), bound(virtualNode(vc, 1), 'blade1')];
    assert.deepEqual(computeAllocation('blade1', vns, [mig()]), { cores: 4, memoryMiB: 2048, vms: 2 });
    assert.deepEqual(computeAllocation('blade2', vns, [mig()]), { cores: 2, memoryMiB: 1024, vms: 1 });
    assert.deepEqual(computeAllocation('blade2', vns, [mig('Failed')]), { cores: 0, memoryMiB: 0, vms: 0 });
    // Succeeded but not yet re-bound: the room stays reserved; once applied, the bound VM counts.
    assert.equal(migrationReserves(mig('Succeeded'), vns[0]), true);
    assert.deepEqual(computeAllocation('blade2', [bound(virtualNode(vc, 0), 'blade2')], [mig('Succeeded', true)]), { cores: 2, memoryMiB: 1024, vms: 1 });
  });
});

describe('planBinding over a NodeView', () => {
  it('a VC whose VMs are all bound is planned from lookups by name, never the list of every node; one with an unbound VM lists them to place it', () => {
    const pns = [physicalNode('n1', 8, 8192), physicalNode('n2', 8, 8192)];
    const vc = virtualCluster('v', 2, 1, 256);
    const bound = [0, 1].map((i) => ({ ...virtualNode(vc, i), spec: { ...virtualNode(vc, i).spec!, physicalNode: 'n1' } }));
    let listed = 0;
    const view: NodeView = { get: (name) => pns.find((p) => p.metadata.name === name), all: () => { listed++; return pns; } };
    const d = planBinding(vc, bound, view);
    assert.equal(d.kind, 'none');
    assert.equal(d.condition.reason, 'Placed');
    assert.equal(listed, 0, 'no list for a bound VC');
    assert.deepEqual(planBinding(vc, bound, pns), d, 'the same plan as over the array');
    const one = [bound[0]!, virtualNode(vc, 1)];
    const placed = planBinding(vc, one, view);
    assert.equal(placed.kind, 'bind');
    assert.equal(listed, 1);
    assert.deepEqual(placed, planBinding(vc, one, pns));
  });
});
