// Resizing a VC's bound VMs (planBinding with resize.ts): never overcommitting a node; what does
// not fit waits (ResizePending, with each node's reason) until the VC is Stopped or Suspended and
// is re-placed.

import assert from 'node:assert/strict';
import type { PhysicalNode, VirtualCluster, VirtualNode, VNPhase } from '../../api/types.js';
import { planBinding } from '../../reconcilers/placement/plan-binding.js';
import { physicalNode, virtualCluster, virtualNode } from './fixtures.js';

function withAlloc(pn: PhysicalNode, cores: number, memoryMiB: number, vms: number): PhysicalNode {
  return { ...pn, status: { ...pn.status, allocated: { cores, memoryMiB, vms } } };
}
/** A VM of `vc` bound to `node` with its old size (1 vCPU, 1024 MiB). */
function old(vc: VirtualCluster, i: number, node: string, phase: VNPhase = 'Running'): VirtualNode {
  const vn = virtualNode(vc, i);
  return { ...vn, spec: { ...vn.spec!, physicalNode: node, vcpus: 1, memoryMiB: 1024 }, status: { phase } };
}
function resized(vc: VirtualCluster, vcpus: number, memoryMiB: number): VirtualCluster {
  return { ...vc, metadata: { ...vc.metadata, generation: 2 }, spec: { ...vc.spec!, node: { ...vc.spec!.node, vcpus, memoryMiB } },
    status: { placement: { strategy: vc.spec!.placement.strategy, mode: vc.spec!.placement.mode } } };
}

describe('planBinding: resize', () => {
  it('resizes running VMs in place where their node has room, and holds the others with the reason per node', () => {
    const vc = resized(virtualCluster('s', 2, 1, 1024, 'Cyclic', 'Strict'), 2, 2048);
    // blade1 hosts s-0 (1 core, 1 GiB of 4 cores / 4 GiB); blade2 hosts s-1 and is nearly full.
    const pns = [withAlloc(physicalNode('blade1', 4, 4096), 1, 1024, 1), withAlloc(physicalNode('blade2', 4, 4096), 4, 3584, 3)];
    const d = planBinding(vc, [old(vc, 0, 'blade1'), old(vc, 1, 'blade2')], pns);
    assert.equal(d.kind, 'bind');
    if (d.kind !== 'bind') return;
    assert.deepEqual(d.binds.map((b) => [b.vn.metadata.name, b.node, b.size.vcpus, b.size.memoryMiB]), [['s-0', 'blade1', 2, 2048]]);
    assert.deepEqual(Object.fromEntries(d.deltas), { blade1: { cores: 1, memoryMiB: 1024, vms: 0 } });
    assert.equal(d.condition.status, 'True');
    assert.equal(d.condition.reason, 'ResizePending');
    assert.match(d.condition.message!, /blade2: insufficient memory \(free 512 MiB, need 1024 MiB more\), insufficient cores \(Strict: free 0, need 1 more\) for s-1/);
    assert.doesNotMatch(d.condition.message!, /blade1/);
  });

  it('Lazy counts only memory: more vCPUs on a full-core node fit', () => {
    const vc = resized(virtualCluster('s', 1, 1, 1024, 'Block', 'Lazy'), 4, 1024);
    const d = planBinding(vc, [old(vc, 0, 'blade1')], [withAlloc(physicalNode('blade1', 2, 4096), 2, 1024, 1)]);
    assert.equal(d.kind, 'bind');
    assert.equal(d.condition.reason, 'Placed');
    if (d.kind === 'bind') assert.deepEqual(Object.fromEntries(d.deltas), { blade1: { cores: 3, memoryMiB: 0, vms: 0 } });
  });

  it('Strict refuses the same on cores', () => {
    const vc = resized(virtualCluster('s', 1, 1, 1024, 'Block', 'Strict'), 4, 1024);
    const d = planBinding(vc, [old(vc, 0, 'blade1')], [withAlloc(physicalNode('blade1', 2, 4096), 2, 1024, 1)]);
    assert.equal(d.kind, 'none');
    assert.equal(d.condition.reason, 'ResizePending');
    assert.match(d.condition.message!, /blade1: insufficient cores \(Strict: free 0, need 3 more\)/);
  });

  it('a shrink always fits and gives the room back', () => {
    const vc = resized(virtualCluster('s', 1, 1, 1024), 1, 512);
    const d = planBinding(vc, [old(vc, 0, 'blade1')], [withAlloc(physicalNode('blade1', 1, 1024), 1, 1024, 1)]);
    assert.equal(d.kind, 'bind');
    if (d.kind === 'bind') assert.deepEqual(Object.fromEntries(d.deltas), { blade1: { cores: 0, memoryMiB: -512, vms: 0 } });
  });

  it('a running VM counts the larger of its new size and the size it still runs with', () => {
    const vc = resized(virtualCluster('s', 1, 1, 1024), 1, 512);
    const running = { ...old(vc, 0, 'blade1'), status: { phase: 'Running' as const, runningSize: { vcpus: 1, memoryMiB: 1024 } } };
    const shrink = planBinding(vc, [running], [withAlloc(physicalNode('blade1', 1, 1024), 1, 1024, 1)]);
    assert.equal(shrink.kind, 'bind', 'the spec shrinks at once');
    if (shrink.kind === 'bind') assert.deepEqual(Object.fromEntries(shrink.deltas), {}, 'but the node frees nothing until the VM restarts');
    // Growing back past what it runs with counts only the difference to the running size.
    const grown = resized(vc, 1, 1536);
    const small = { ...running, spec: { ...running.spec!, memoryMiB: 512 } };
    const g = planBinding(grown, [small], [withAlloc(physicalNode('blade1', 1, 2048), 1, 1024, 1)]);
    assert.equal(g.kind, 'bind');
    if (g.kind === 'bind') assert.deepEqual(Object.fromEntries(g.deltas), { blade1: { cores: 0, memoryMiB: 512, vms: 0 } });
  });

  it('two VMs of the VC on one node are checked together (never half a node overcommitted)', () => {
    const vc = resized(virtualCluster('s', 2, 1, 1024), 1, 2048);
    // 2 x +1024 MiB needed, 1536 MiB free: neither is resized.
    const d = planBinding(vc, [old(vc, 0, 'blade1'), old(vc, 1, 'blade1')], [withAlloc(physicalNode('blade1', 4, 3584), 2, 2048, 2)]);
    assert.equal(d.kind, 'none');
    assert.equal(d.condition.reason, 'ResizePending');
    assert.match(d.condition.message!, /need 2048 MiB more\) for s-0, s-1/);
  });

  it('once the VC is Stopped or Suspended, the held resize re-places the whole VC with the new size', () => {
    const vc = resized(virtualCluster('s', 2, 1, 1024, 'Block', 'Strict', 'Suspended'), 2, 2048);
    const pns = [withAlloc(physicalNode('blade1', 4, 4096), 2, 2048, 2), physicalNode('blade2', 4, 4096)];
    const d = planBinding(vc, [old(vc, 0, 'blade1', 'Suspended'), old(vc, 1, 'blade1', 'Suspended')], pns);
    assert.equal(d.kind, 'bind');
    if (d.kind !== 'bind') return;
    // Block: blade1 (its own 2 GiB counted as free) takes both at 2 GiB each.
    assert.deepEqual(d.binds.map((b) => [b.vn.metadata.name, b.node, b.size.memoryMiB]), [['s-0', 'blade1', 2048], ['s-1', 'blade1', 2048]]);
    assert.deepEqual(Object.fromEntries(d.deltas), { blade1: { cores: 2, memoryMiB: 2048, vms: 0 } });
    assert.equal(d.condition.reason, 'Placed');
  });

  it('a stopped VC whose new size fits nowhere keeps its binding and old size: Unschedulable', () => {
    const vc = resized(virtualCluster('s', 1, 1, 1024, 'Block', 'Strict', 'Stopped'), 1, 8192);
    const d = planBinding(vc, [old(vc, 0, 'blade1', 'Stopped')], [withAlloc(physicalNode('blade1', 4, 4096), 1, 1024, 1)]);
    assert.equal(d.kind, 'none');
    assert.equal(d.condition.reason, 'Unschedulable');
  });
});
