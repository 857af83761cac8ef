// planBinding: what the placement controller does next for one VirtualCluster, decided from
// observed state without I/O. The controller turns a decision into one atomic store batch.
//
// Rules (API.md "Placement semantics"):
// - Nothing is placed until every VirtualNode <vc>-0..n-1 exists (all or nothing).
// - Unbound VMs (new ones, or bound to a PhysicalNode that no longer exists) are placed with the
//   VC's placement on what the other VMs leave free; the bound ones stay where they are.
// - status.placement records the placement the binding was made with. When spec.placement
//   differs and some VM of the VC is active (starting, running, migrating, suspending), the
//   change waits (`RemapPending`); once none is active (Suspended or Stopped, or about to be
//   resumed) the whole VC is re-placed, on the nodes' free room plus what it frees itself.
// - A re-placement that does not fit keeps the current binding: `Placed=False, Unschedulable`.
// - A changed VM size (spec.node) is checked against each VM's node before it is given
//   (resize.ts): what does not fit waits (`ResizePending`) until no VM is active, then the VC is
//   re-placed with the new size. A node is never overcommitted by a resize.
// - "Free" is capacity minus PhysicalNode.status.allocated: the allocation the controller keeps
//   in the same transactions as the bindings, so its resourceVersion guards against overcommit.

import { getCondition, type ConditionInput } from '../../api/conditions.js';
import type {
  PhysicalNode, VirtualCluster, VirtualClusterSpec, VirtualNode, VNPhase,
} from '../../api/types.js';
import {
  placeCluster, type ClusterPlacement, type ClusterRequest, type NodeCapacity, type Usage,
} from './engine.js';
import { hasSize, resizeInPlace, sizeOf, type Size } from './resize.js';

export const PLACED = 'Placed';

/** Phases in which a VM occupies its node and cannot simply be re-bound. */
const ACTIVE_PHASES: ReadonlySet<VNPhase> = new Set<VNPhase>(['Starting', 'Running', 'Migrating', 'Suspending']);

export type PlacementSpec = VirtualClusterSpec['placement'];

export interface Binding {
  vn: VirtualNode;
  /** The new spec.physicalNode. */
  node: string;
  /** The VM's size from now on (spec.vcpus and spec.memoryMiB): the VC's. */
  size: Size;
}

export type BindingDecision =
  | { kind: 'none'; condition: ConditionInput; applied: PlacementSpec }
  | {
    kind: 'bind';
    binds: Binding[];
    /** Per PhysicalNode: what its allocation changes by. */
    deltas: Map<string, Usage>;
    condition: ConditionInput;
    applied: PlacementSpec;
    placement: ClusterPlacement;
  };

export function isNodeReady(pn: PhysicalNode): boolean {
  return getCondition(pn.status?.conditions, 'Ready')?.status === 'True';
}

export const ZERO: Usage = { cores: 0, memoryMiB: 0, vms: 0 };

export function nodeCapacity(pn: PhysicalNode, used: Usage = pn.status?.allocated ?? ZERO): NodeCapacity {
  return {
    name: pn.metadata.name,
    ready: isNodeReady(pn),
    unschedulable: pn.spec?.unschedulable === true,
    cores: pn.spec?.capacity.cores ?? 0,
    memoryMiB: pn.spec?.capacity.memoryMiB ?? 0,
    maxVMs: pn.spec?.maxVMs,
    used,
    hypervisor: pn.spec?.hypervisor,
  };
}

/**
 * The hypervisor kind of the node the first bound VM is on. A VC's VMs go to spec.hypervisor, else
 * to this kind (a VC stays on one kind), else (undefined) to the first kind that fits.
 */
export function boundKind(bound: readonly VirtualNode[], byName: Pick<ReadonlyMap<string, PhysicalNode>, 'get'>): string | undefined {
  for (const v of bound) {
    const k = byName.get(v.spec?.physicalNode ?? '')?.spec?.hypervisor;
    if (k) return k;
  }
  return undefined;
}

/**
 * What a VM takes on its node: its size (spec), or the size it still runs with when that is larger
 * (a resize reaches a running VM only at its next start: a shrink frees nothing before then).
 */
export function vmUsage(vn: VirtualNode, k = 1): Usage {
  return usageOf({ vcpus: vn.spec?.vcpus ?? 0, memoryMiB: vn.spec?.memoryMiB ?? 0 }, vn, k);
}

/** The usage of a VM of size `s`, counting at least the size `vn` runs with now. */
export function usageOf(s: { vcpus: number; memoryMiB: number }, vn: VirtualNode, k = 1): Usage {
  const run = vn.status?.runningSize;
  return { cores: k * Math.max(s.vcpus, run?.vcpus ?? 0), memoryMiB: k * Math.max(s.memoryMiB, run?.memoryMiB ?? 0), vms: k };
}

export function addUsage(a: Usage, b: Usage, sign = 1): Usage {
  return { cores: a.cores + sign * b.cores, memoryMiB: a.memoryMiB + sign * b.memoryMiB, vms: a.vms + sign * b.vms };
}

export function sameUsage(a: Usage | undefined, b: Usage | undefined): boolean {
  const x = a ?? ZERO;
  const y = b ?? ZERO;
  return x.cores === y.cores && x.memoryMiB === y.memoryMiB && x.vms === y.vms;
}

/** The VMs of the VC that placement handles: not being deleted, index < spec.nodes, by index. */
export function liveNodes(vc: VirtualCluster, vns: readonly VirtualNode[]): VirtualNode[] {
  const n = vc.spec?.nodes ?? 0;
  return vns
    .filter((v) => !v.metadata.deletionTimestamp && v.spec && v.spec.cluster === vc.metadata.name && v.spec.index < n)
    .sort((a, b) => a.spec!.index - b.spec!.index);
}

/**
 * The PhysicalNodes a plan looks at: by name, and all of them. A VC whose VMs are all bound (most
 * of a VC's plans: each woken by a VM's phase) needs only the lookups, never the list: made from
 * the cache, it costs the VC's VMs, not the nodes (hack/bench-scale: a list and a Map of 1,000
 * nodes per plan, planBinding x40 from 100 to 1,000 nodes).
 */
export interface NodeView {
  get(name: string): PhysicalNode | undefined;
  /** Every node, listed when first asked. */
  all(): readonly PhysicalNode[];
}

/** A NodeView of `pns` (its by-name index built when first asked). */
export function nodeView(pns: readonly PhysicalNode[]): NodeView {
  let byName: Map<string, PhysicalNode> | undefined;
  return {
    get: (name) => (byName ??= new Map(pns.map((p) => [p.metadata.name, p]))).get(name),
    all: () => pns,
  };
}

export function planBinding(
  vc: VirtualCluster, vns: readonly VirtualNode[], nodes: readonly PhysicalNode[] | NodeView,
): BindingDecision {
  const view = Array.isArray(nodes) ? nodeView(nodes) : nodes as NodeView;
  const size = sizeOf(vc);
  const live = liveNodes(vc, vns);
  const resizing = live.filter((v) => v.spec!.physicalNode && view.get(v.spec!.physicalNode) && !hasSize(v, size));
  if (resizing.length > 0 && live.length >= vc.spec!.nodes && !live.some(isActive)) {
    // Nothing runs: the whole VC is re-placed with its new size (the remap's path).
    const desired = { strategy: vc.spec!.placement.strategy, mode: vc.spec!.placement.mode };
    const kind = vc.spec!.hypervisor ?? boundKind(live, view);
    return replaceAll(vc, live, view.all(), desired, vc.status?.placement ?? desired, kind);
  }
  const d = planBinding0(vc, vns, view);
  return resizing.length === 0 ? d : withResize(d, vc, resizing, view.all());
}

function isActive(v: VirtualNode): boolean {
  return !!v.status?.phase && ACTIVE_PHASES.has(v.status.phase);
}

/**
 * What of a VM's phase planBinding reads: active (it occupies its node), Suspended (its state is
 * one hypervisor's) or neither. A change within a class (Starting to Running) plans nothing new.
 */
export function phaseClass(v: VirtualNode): 'active' | 'suspended' | 'idle' {
  return isActive(v) ? 'active' : v.status?.phase === 'Suspended' ? 'suspended' : 'idle';
}

/**
 * Adds to `d` the in-place resizes of the VMs in `resizing` whose node has room (after `d`'s own
 * changes), and reports the nodes that have not (`ResizePending`, the binding unchanged).
 */
function withResize(d: BindingDecision, vc: VirtualCluster, resizing: readonly VirtualNode[], pns: readonly PhysicalNode[]): BindingDecision {
  if (resizing.length === 0 || d.condition.status === 'False') return d;
  const size = sizeOf(vc);
  const strict = d.applied.mode === 'Strict';
  const r = resizeInPlace(resizing, size, pns, strict, d.kind === 'bind' ? d.deltas : undefined);
  let out = d;
  if (r.resized.length > 0) {
    const binds = [...(d.kind === 'bind' ? d.binds : []), ...r.resized.map((vn) => ({ vn, node: vn.spec!.physicalNode!, size }))];
    // The VMs keep their nodes: the placement in force, as it is.
    const placement: ClusterPlacement = d.kind === 'bind' ? d.placement : {
      name: vc.metadata.name, namespace: vc.metadata.namespace ?? 'default', schedulable: true,
      nodes: liveNodes(vc, resizing).map((v) => v.spec!.physicalNode!), reasons: {}, message: d.condition.message ?? '',
    };
    out = { kind: 'bind', binds, deltas: deltasOf(binds), placement, applied: d.applied, condition: d.condition };
  }
  if (r.held.size === 0) return out;
  const reasons = [...r.held.values()].join('; ');
  return {
    ...out,
    condition: {
      type: PLACED, status: 'True', reason: 'ResizePending',
      message: `the new size ${size.vcpus} vCPU, ${size.memoryMiB} MiB does not fit on every node while the VC runs `
        + `(applied when it is Stopped or Suspended and re-placed): ${reasons}`
        + (d.condition.reason === 'RemapPending' ? `; ${d.condition.message}` : ''),
    },
  };
}

function planBinding0(
  vc: VirtualCluster, vns: readonly VirtualNode[], byName: NodeView,
): BindingDecision {
  const spec = vc.spec!;
  const desired = { strategy: spec.placement.strategy, mode: spec.placement.mode };
  const applied = vc.status?.placement;
  const live = liveNodes(vc, vns);
  const bound = live.filter((v) => v.spec!.physicalNode && byName.get(v.spec!.physicalNode));
  const keep = applied ?? desired;

  if (live.length < spec.nodes) {
    return {
      kind: 'none', applied: keep,
      condition: {
        type: PLACED, status: 'False', reason: 'WaitingForVirtualNodes',
        message: `${live.length} of ${spec.nodes} VirtualNodes exist; all of them are placed at once`,
      },
    };
  }

  const unbound = live.filter((v) => !bound.includes(v));
  const nowKind = boundKind(bound, byName);
  const kind = spec.hypervisor ?? nowKind;
  if (spec.hypervisor !== undefined && nowKind !== undefined && nowKind !== spec.hypervisor) {
    // A VC moves to another hypervisor only when no VM has state to carry over (a suspended
    // domain's saved state is one hypervisor's); until then it stays where it is.
    const busy = live.filter((v) => phaseClass(v) !== 'idle');
    if (busy.length === 0) return replaceAll(vc, live, byName.all(), desired, applied ?? desired, spec.hypervisor);
    const pending: ConditionInput = {
      type: PLACED, status: 'True', reason: 'RemapPending',
      message: `spec.hypervisor is ${spec.hypervisor} but the VMs are on ${nowKind} nodes; applied when every VM is Stopped `
        + `(${busy.length} VM${busy.length === 1 ? ' is' : 's are'} running or suspended)`,
    };
    if (unbound.length === 0) return { kind: 'none', applied: keep, condition: pending };
    return placeUnbound(vc, unbound, byName.all(), keep, live.length, nowKind, pending);
  }
  const changed = applied !== undefined && bound.length > 0
    && (applied.strategy !== desired.strategy || applied.mode !== desired.mode);
  if (changed) {
    const active = live.filter(isActive);
    if (active.length === 0) return replaceAll(vc, live, byName.all(), desired, applied, kind);
    const pending: ConditionInput = {
      type: PLACED, status: 'True', reason: 'RemapPending',
      message: `placement changed from ${applied.strategy}/${applied.mode} to ${desired.strategy}/${desired.mode}; `
        + `applied when the VC is next resumed (${active.length} VM${active.length === 1 ? ' is' : 's are'} active)`,
    };
    // New VMs (a scale-up meanwhile) go where the placement in force puts them.
    if (unbound.length === 0) return { kind: 'none', applied, condition: pending };
    return placeUnbound(vc, unbound, byName.all(), applied, live.length, kind, pending);
  }

  if (unbound.length === 0) {
    const used = new Set(bound.map((v) => v.spec!.physicalNode));
    return {
      kind: 'none', applied: keep,
      condition: {
        type: PLACED, status: 'True', reason: 'Placed',
        message: `${live.length} VM${live.length === 1 ? '' : 's'} on ${used.size} node${used.size === 1 ? '' : 's'} (${keep.strategy}, ${keep.mode})`,
      },
    };
  }
  return placeUnbound(vc, unbound, byName.all(), desired, live.length, kind);
}

/** Places only the unbound VMs, on what everybody (this VC's bound VMs included) leaves free. */
function placeUnbound(
  vc: VirtualCluster, unbound: VirtualNode[], pns: readonly PhysicalNode[], p: PlacementSpec,
  total: number, kind: string | undefined, condition?: ConditionInput,
): BindingDecision {
  const r = placeCluster(pns.map((n) => nodeCapacity(n)), request(vc, unbound.length, p, kind));
  if (!r.schedulable) return unschedulable(r, p);
  const size = sizeOf(vc);
  const d = bindDecision(unbound.map((vn, i) => ({ vn, node: r.nodes[i]!, size })), r, p, total);
  return condition ? { ...d, condition } : d;
}

function replaceAll(
  vc: VirtualCluster, live: VirtualNode[], pns: readonly PhysicalNode[],
  desired: PlacementSpec,
  applied: PlacementSpec,
  kind: string | undefined,
): BindingDecision {
  // What this VC's own VMs take on each node is free for its re-placement.
  const own = new Map<string, Usage>();
  for (const v of live) {
    const n = v.spec!.physicalNode;
    if (n) own.set(n, addUsage(own.get(n) ?? ZERO, vmUsage(v)));
  }
  const nodes = pns.map((p) => nodeCapacity(p, addUsage(p.status?.allocated ?? ZERO, own.get(p.metadata.name) ?? ZERO, -1)));
  const r = placeCluster(nodes, request(vc, live.length, desired, kind));
  if (!r.schedulable) {
    return unschedulable(r, applied, `cannot re-place with ${desired.strategy}/${desired.mode}, the VMs stay where they are: `);
  }
  const binds: Binding[] = [];
  const size = sizeOf(vc);
  live.forEach((vn, i) => {
    if (vn.spec!.physicalNode !== r.nodes[i] || !hasSize(vn, size)) binds.push({ vn, node: r.nodes[i]!, size });
  });
  return bindDecision(binds, r, desired, live.length);
}

function request(vc: VirtualCluster, vms: number, p: PlacementSpec, hypervisor: string | undefined): ClusterRequest {
  return {
    hypervisor,
    name: vc.metadata.name,
    namespace: vc.metadata.namespace ?? 'default',
    vms,
    vcpus: vc.spec!.node.vcpus,
    memoryMiB: vc.spec!.node.memoryMiB,
    strategy: p.strategy,
    mode: p.mode,
  };
}

function unschedulable(
  r: ClusterPlacement,
  keep: PlacementSpec,
  prefix = '',
): BindingDecision {
  return {
    kind: 'none', applied: keep,
    condition: { type: PLACED, status: 'False', reason: 'Unschedulable', message: prefix + r.message },
  };
}

/** Per node, what its allocation changes by: a VM leaves its old node with its old size and takes its new size on its node. */
function deltasOf(binds: readonly Binding[]): Map<string, Usage> {
  const deltas = new Map<string, Usage>();
  for (const b of binds) {
    const old = b.vn.spec!.physicalNode;
    if (old) deltas.set(old, addUsage(deltas.get(old) ?? ZERO, vmUsage(b.vn), -1));
    // On its own node a running VM keeps counting the size it runs with; elsewhere it starts afresh.
    const usage = b.node === old ? usageOf(b.size, b.vn) : usageOf(b.size, { ...b.vn, status: undefined });
    deltas.set(b.node, addUsage(deltas.get(b.node) ?? ZERO, usage));
  }
  for (const [k, d] of deltas) if (sameUsage(d, ZERO)) deltas.delete(k);
  return deltas;
}

function bindDecision(
  binds: Binding[], r: ClusterPlacement,
  desired: PlacementSpec,
  total: number,
): BindingDecision {
  const used = new Set(r.nodes);
  return {
    kind: 'bind', binds, deltas: deltasOf(binds), placement: r, applied: desired,
    condition: {
      type: PLACED, status: 'True', reason: 'Placed',
      message: `${total} VM${total === 1 ? '' : 's'} on ${used.size} node${used.size === 1 ? '' : 's'} (${desired.strategy}, ${desired.mode})`,
    },
  };
}
