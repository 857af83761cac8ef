// One hypervisor kind per VirtualCluster (issue 16 item 4): spec.hypervisor limits placement to
// nodes of that kind; without it a VC goes to the first kind that takes all of it and then stays
// there; drains and migrations never cross kinds, and vcctl plan says why per node.

import assert from 'node:assert/strict';
import type { Migration, PhysicalNode, VirtualCluster, VirtualNode, VNPhase } from '../../api/types.js';
import { computeAllocation } from '../../reconcilers/placement/allocation.js';
import { placeCluster, placeClusters, type ClusterRequest, type NodeCapacity } from '../../reconcilers/placement/engine.js';
import { planBinding } from '../../reconcilers/placement/plan-binding.js';
import { planDrain, previewPlacement } from '../../reconcilers/placement/preview.js';
import { crossKind, refuseTarget } from '../../reconcilers/runtime/migration-controller.js';
import { physicalNode, virtualCluster, virtualNode } from './fixtures.js';

function node(name: string, hypervisor: string, memoryMiB = 4096, cores = 4): NodeCapacity {
  return { name, cores, memoryMiB, ready: true, unschedulable: false, used: { cores: 0, memoryMiB: 0, vms: 0 }, hypervisor };
}
function req(vms: number, memoryMiB: number, hypervisor?: string, name = 'c'): ClusterRequest {
  return { name, namespace: 'default', vms, vcpus: 1, memoryMiB, strategy: 'Block', mode: 'Lazy', ...(hypervisor ? { hypervisor } : {}) };
}
function pn(name: string, hypervisor: 'qemu' | 'xen', memoryMiB = 4096): PhysicalNode {
  const p = physicalNode(name, 4, memoryMiB);
  return { ...p, spec: { ...p.spec!, hypervisor } };
}
function withKind(vc: VirtualCluster, hypervisor: 'qemu' | 'xen'): VirtualCluster {
  return { ...vc, spec: { ...vc.spec!, hypervisor } };
}
function bound(vn: VirtualNode, node: string, phase?: VNPhase): VirtualNode {
  return { ...vn, spec: { ...vn.spec!, physicalNode: node }, status: phase ? { phase, host: node } : undefined };
}

describe('placement engine: hypervisor kinds', () => {
  // natural order: q1 (qemu) < x1 (xen) < x2 (xen)... the first kind is the kind of the first node
  const nodes = [node('n1', 'qemu', 2048), node('n2', 'xen'), node('n3', 'qemu', 2048), node('n4', 'xen')];

  it('a VC asking for a kind goes only to nodes of that kind', () => {
    const r = placeCluster(nodes, req(3, 1024, 'xen'));
    assert.equal(r.schedulable, true);
    assert.deepEqual(r.nodes, ['n2', 'n2', 'n2']);
  });

  it('without spec.hypervisor: the first kind (by its first node) that takes all of it', () => {
    assert.deepEqual(placeCluster(nodes, req(4, 1024)).nodes, ['n1', 'n1', 'n3', 'n3']);
    // qemu has room for 4 VMs of 1 GiB only: 5 go to xen, none split across kinds
    assert.deepEqual(placeCluster(nodes, req(5, 1024)).nodes, ['n2', 'n2', 'n2', 'n2', 'n4']);
  });

  it('never splits a VC across kinds: unschedulable with the room per kind', () => {
    const r = placeCluster(nodes, req(9, 1024));
    assert.equal(r.schedulable, false);
    assert.deepEqual(r.nodes, []);
    assert.match(r.message, /^cannot place 9 VMs of 1 vCPU and 1024 MiB \(Block, Lazy\) on nodes of one hypervisor kind: room for 4 on 2 qemu nodes, room for 8 on 2 xen nodes/);
    assert.deepEqual(Object.keys(r.reasons).sort(), ['n1', 'n2', 'n3', 'n4']);
  });

  it('asking for a kind that does not fit: the message names spec.hypervisor, other kinds are reasons', () => {
    const r = placeCluster(nodes, req(5, 1024, 'qemu'));
    assert.equal(r.schedulable, false);
    assert.match(r.message, /on qemu nodes \(spec\.hypervisor\): room for 4 on 2 qemu nodes/);
    assert.equal(r.reasons.n2, 'hypervisor xen, the VirtualCluster asks for qemu');
    assert.match(r.reasons.n1!, /room for 2 VMs, then insufficient memory/);
  });

  it('asking for a kind no node has', () => {
    const r = placeCluster([node('n1', 'qemu')], req(1, 128, 'xen'));
    assert.equal(r.schedulable, false);
    assert.match(r.message, /there are no PhysicalNodes with hypervisor xen \(spec\.hypervisor\)/);
    assert.equal(r.reasons.n1, 'hypervisor qemu, the VirtualCluster asks for xen');
  });

  it('several VCs: each kind keeps its own free room, used is reported for every node', () => {
    const r = placeClusters(nodes, [req(2, 1024, 'qemu', 'a'), req(2, 1024, undefined, 'b'), req(1, 1024, 'xen', 'c')]);
    assert.deepEqual(r.clusters.map((c) => c.nodes), [['n1', 'n1'], ['n3', 'n3'], ['n2']]);
    assert.deepEqual(Object.fromEntries([...r.used].map(([n, u]) => [n, u.vms])), { n1: 2, n2: 1, n3: 2, n4: 0 });
  });

  it('explain: nodes of another kind say so', () => {
    const r = placeCluster(nodes, req(1, 1024, 'xen'), { explain: true });
    assert.equal(r.reasons.n1, 'hypervisor qemu, the VirtualCluster asks for xen');
    assert.equal(r.reasons.n2, undefined);
  });
});

describe('planBinding: hypervisor kinds', () => {
  const pns = [pn('a1', 'xen'), pn('b1', 'qemu'), pn('b2', 'qemu')];

  it('a VC bound to qemu nodes re-places a lost VM on qemu, though a xen node comes first', () => {
    const vc = virtualCluster('s', 2, 1, 1024);
    const d = planBinding(vc, [bound(virtualNode(vc, 0), 'b1', 'Running'), virtualNode(vc, 1)], pns);
    assert.equal(d.kind, 'bind');
    if (d.kind === 'bind') assert.deepEqual(d.binds.map((b) => b.node), ['b1']);
  });

  it('spec.hypervisor xen: placed on the xen node only', () => {
    const vc = withKind(virtualCluster('s', 2, 1, 1024, 'Cyclic'), 'xen');
    const d = planBinding(vc, [virtualNode(vc, 0), virtualNode(vc, 1)], pns);
    assert.equal(d.kind, 'bind');
    if (d.kind === 'bind') assert.deepEqual(d.binds.map((b) => b.node), ['a1', 'a1']);
  });

  it('spec.hypervisor changed while VMs run or are suspended: RemapPending, nothing moves', () => {
    const vc = withKind(virtualCluster('s', 2, 1, 1024), 'xen');
    for (const phase of ['Running', 'Suspended'] as const) {
      const d = planBinding(vc, [bound(virtualNode(vc, 0), 'b1', phase), bound(virtualNode(vc, 1), 'b1', 'Stopped')], pns);
      assert.equal(d.kind, 'none');
      assert.equal(d.condition.reason, 'RemapPending');
      assert.match(d.condition.message!, /spec\.hypervisor is xen but the VMs are on qemu nodes; applied when every VM is Stopped \(1 VM is running or suspended\)/);
    }
  });

  it('spec.hypervisor changed and every VM Stopped: the whole VC moves to the new kind', () => {
    const vc = withKind(virtualCluster('s', 2, 1, 1024, 'Block', 'Strict', 'Stopped'), 'xen');
    const d = planBinding(vc, [bound(virtualNode(vc, 0), 'b1', 'Stopped'), bound(virtualNode(vc, 1), 'b2', 'Stopped')], pns);
    assert.equal(d.kind, 'bind');
    if (d.kind === 'bind') {
      assert.deepEqual(d.binds.map((b) => [b.vn.metadata.name, b.node]), [['s-0', 'a1'], ['s-1', 'a1']]);
      assert.deepEqual(Object.fromEntries(d.deltas), { b1: { cores: -1, memoryMiB: -1024, vms: -1 }, b2: { cores: -1, memoryMiB: -1024, vms: -1 }, a1: { cores: 2, memoryMiB: 2048, vms: 2 } });
    }
  });
});

describe('drain, migrations and vcctl plan across kinds', () => {
  const pns = [pn('a1', 'xen'), pn('b1', 'qemu'), pn('b2', 'qemu', 1024)];
  const vc = virtualCluster('s', 2, 1, 1024);
  const vns = [bound(virtualNode(vc, 0), 'b1', 'Running'), bound(virtualNode(vc, 1), 'b1', 'Running')];

  it('a drain moves VMs only to nodes of the drained node\'s kind, or refuses', () => {
    const plan = planDrain('b1', { pns, vns, vcs: [vc], migrations: [] });
    assert.equal(plan.moves.length, 0);
    assert.equal(plan.refused.length, 1);
    assert.match(plan.refused[0]!.message, /a1: hypervisor xen, the VirtualCluster asks for qemu/);
    const roomy = [pns[0]!, pns[1]!, pn('b2', 'qemu')];
    assert.deepEqual(planDrain('b1', { pns: roomy, vns, vcs: [vc], migrations: [] }).moves.map((m) => m.to), ['b2', 'b2']);
  });

  it('a Migration to a node of another kind is refused with the reason', () => {
    const why = refuseTarget(pns[0], vns[0]!, vc, (node) => computeAllocation(node, vns, [] as Migration[]), pns[1]);
    assert.equal(why, 'hypervisor xen, the VM runs on qemu node b1: a live migration never crosses hypervisor kinds');
    assert.equal(crossKind(pns[1], pn('b3', 'qemu')), undefined);
  });

  it('vcctl plan gives every node of another kind its reason', () => {
    const p = previewPlacement({ pns, vns: [], migrations: [] }, { pns: [], vcs: [withKind(virtualCluster('t', 1, 1, 512), 'qemu')] });
    assert.equal(p.clusters[0]!.schedulable, true);
    assert.equal(p.clusters[0]!.reasons.a1, 'hypervisor xen, the VirtualCluster asks for qemu');
  });
});
