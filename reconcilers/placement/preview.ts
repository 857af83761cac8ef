// Pure planning behind `vcctl plan` and `vcctl drain`: no I/O, no writes.

import { DEFAULT_NAMESPACE } from '../../api/kinds.js';
import type { Migration, PhysicalNode, VirtualCluster, VirtualNode } from '../../api/types.js';
import { computeAllocations, migrationReserves } from './allocation.js';
import { placeClusters, type ClusterRequest, type NodeCapacity } from './engine.js';
import { addUsage, nodeCapacity, vmUsage, ZERO } from './plan-binding.js';

export interface PlanPreview {
  clusters: {
    name: string;
    namespace: string;
    schedulable: boolean;
    placements: { virtualNode: string; physicalNode: string }[];
    reasons: Record<string, string>;
  }[];
}

/**
 * `vcctl plan`: the VirtualClusters of a file placed, in file order, on the stored PhysicalNodes
 * with what is bound to them, plus the file's PhysicalNodes (taken as Ready, nothing bound; one
 * named like a stored node replaces its spec). A VC that already exists is previewed as if placed
 * afresh: its own bound VMs do not count against it.
 */
export function previewPlacement(
  stored: { pns: readonly PhysicalNode[]; vns: readonly VirtualNode[]; migrations: readonly Migration[] },
  file: { pns: readonly PhysicalNode[]; vcs: readonly VirtualCluster[] },
): PlanPreview {
  const planned = new Set(file.vcs.map((vc) => `${vc.metadata.namespace ?? DEFAULT_NAMESPACE}/${vc.metadata.name}`));
  const others = stored.vns.filter((v) => !planned.has(`${v.metadata.namespace ?? DEFAULT_NAMESPACE}/${v.spec?.cluster}`));
  const used = computeAllocations(others, stored.migrations);
  const fromFile = new Map(file.pns.map((p) => [p.metadata.name, p]));
  const nodes: NodeCapacity[] = [];
  for (const p of stored.pns) {
    const f = fromFile.get(p.metadata.name);
    const base = nodeCapacity(f ?? p, used.get(p.metadata.name) ?? ZERO);
    nodes.push(f ? { ...base, ready: true } : base);
  }
  const storedNames = new Set(stored.pns.map((p) => p.metadata.name));
  for (const p of file.pns) {
    if (!storedNames.has(p.metadata.name)) nodes.push({ ...nodeCapacity(p, ZERO), ready: true });
  }
  const requests: ClusterRequest[] = file.vcs.map((vc) => ({
    name: vc.metadata.name,
    namespace: vc.metadata.namespace ?? DEFAULT_NAMESPACE,
    vms: vc.spec!.nodes,
    vcpus: vc.spec!.node.vcpus,
    memoryMiB: vc.spec!.node.memoryMiB,
    strategy: vc.spec!.placement.strategy,
    mode: vc.spec!.placement.mode,
    hypervisor: vc.spec!.hypervisor,
  }));
  const r = placeClusters(nodes, requests, { explain: true });
  return {
    clusters: r.clusters.map((c) => ({
      name: c.name,
      namespace: c.namespace,
      schedulable: c.schedulable,
      placements: c.nodes.map((physicalNode, i) => ({ virtualNode: `${c.name}-${i}`, physicalNode })),
      reasons: c.reasons,
    })),
  };
}

export interface DrainMove {
  vn: VirtualNode;
  from: string;
  to: string;
}

export interface DrainPlan {
  moves: DrainMove[];
  /** VMs on the node that already have a Migration in flight (left alone). */
  inFlight: VirtualNode[];
  /** VCs whose VMs on the node do not fit elsewhere, with the engine's message. */
  refused: { cluster: string; namespace: string; message: string }[];
}

/**
 * `vcctl drain NODE`: every VM bound to NODE (without a Migration in flight) re-placed with its
 * VC's strategy and mode on the other nodes, VC by VC in name order, each seeing the moves before
 * it. NODE is treated as cordoned. Free room is what status.allocated leaves.
 */
export function planDrain(
  node: string,
  stored: { pns: readonly PhysicalNode[]; vns: readonly VirtualNode[]; vcs: readonly VirtualCluster[]; migrations: readonly Migration[] },
): DrainPlan {
  const vnKey = (ns: string | undefined, n: string) => `${ns ?? DEFAULT_NAMESPACE}/${n}`;
  const migrating = new Set(
    stored.migrations
      .filter((m) => m.spec && m.status?.phase !== 'Succeeded'
        && migrationReserves(m, stored.vns.find((v) => v.metadata.name === m.spec!.virtualNode && v.metadata.namespace === m.metadata.namespace)))
      .map((m) => vnKey(m.metadata.namespace, m.spec!.virtualNode)),
  );
  const onNode = stored.vns
    .filter((v) => v.spec?.physicalNode === node)
    .sort((a, b) => vnKey(a.metadata.namespace, a.spec!.cluster).localeCompare(vnKey(b.metadata.namespace, b.spec!.cluster)) || a.spec!.index - b.spec!.index);
  const inFlight = onNode.filter((v) => migrating.has(vnKey(v.metadata.namespace, v.metadata.name)));
  const toMove = onNode.filter((v) => !migrating.has(vnKey(v.metadata.namespace, v.metadata.name)));
  const groups = new Map<string, VirtualNode[]>();
  for (const v of toMove) {
    const k = vnKey(v.metadata.namespace, v.spec!.cluster);
    groups.set(k, [...(groups.get(k) ?? []), v]);
  }
  // A live migration stays on the drained node's hypervisor kind.
  const kind = stored.pns.find((p) => p.metadata.name === node)?.spec?.hypervisor;
  const nodes = stored.pns.map((p) => {
    const c = nodeCapacity(p);
    return p.metadata.name === node ? { ...c, unschedulable: true } : c;
  });
  const requests: ClusterRequest[] = [];
  const members: VirtualNode[][] = [];
  for (const [k, vms] of groups) {
    const vc = stored.vcs.find((x) => vnKey(x.metadata.namespace, x.metadata.name) === k);
    const first = vms[0]!;
    requests.push({
      name: first.spec!.cluster,
      namespace: first.metadata.namespace ?? DEFAULT_NAMESPACE,
      vms: vms.length,
      vcpus: first.spec!.vcpus,
      memoryMiB: first.spec!.memoryMiB,
      strategy: vc?.spec?.placement.strategy ?? 'Block',
      mode: vc?.spec?.placement.mode ?? 'Strict',
      hypervisor: kind,
    });
    members.push(vms);
  }
  const r = placeClusters(nodes, requests);
  const moves: DrainMove[] = [];
  const refused: DrainPlan['refused'] = [];
  r.clusters.forEach((c, i) => {
    if (!c.schedulable) {
      refused.push({ cluster: c.name, namespace: c.namespace, message: c.message });
      return;
    }
    members[i]!.forEach((vn, j) => moves.push({ vn, from: node, to: c.nodes[j]! }));
  });
  return { moves, inFlight, refused };
}

/** What each target node's allocation grows by when the moves are reserved. */
export function reservations(moves: readonly DrainMove[]): Map<string, ReturnType<typeof vmUsage>> {
  const out = new Map<string, ReturnType<typeof vmUsage>>();
  for (const m of moves) out.set(m.to, addUsage(out.get(m.to) ?? ZERO, vmUsage(m.vn)));
  return out;
}
