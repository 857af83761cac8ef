// Pure planning for the VirtualCluster controller: which VirtualNodes to create, update and
// delete for a VC, and what the VC's status says about them. No I/O; table-tested.

import {
  API_VERSION,
  type Condition, type VCPhase, type VirtualCluster, type VirtualClusterStatus, type VirtualNode, type VNPhase,
} from '../../api/types.js';
import { getCondition, type ConditionInput } from '../../api/conditions.js';
import { controllerReference } from '../../controllers/gc/owner-references.js';

import { CLUSTER_LABEL } from '../../api/labels.js';


export function virtualNodeName(vc: VirtualCluster, index: number): string {
  return `${vc.metadata.name}-${index}`;
}

export interface VirtualNodePlan {
  create: VirtualNode[];
  /** Owned unbound nodes whose vcpus/memory differ from the VC. A bound node's size is changed by
   * placement, checked against its node (never overcommitting it: reconcilers/placement/resize.ts). */
  update: VirtualNode[];
  /** Owned nodes beyond spec.nodes, highest index first. */
  delete: VirtualNode[];
  /** Names taken by a node this VC does not own (an earlier VC of the same name): wait for the GC. */
  blocked: string[];
}

function ownedBy(vn: VirtualNode, vc: VirtualCluster): boolean {
  return (vn.metadata.ownerReferences ?? []).some((r) => r.controller && r.uid === vc.metadata.uid);
}

/** The VirtualNodes `vc` should have next, given the ones that exist (any owner, same namespace). */
export function planVirtualNodes(vc: VirtualCluster, existing: readonly VirtualNode[]): VirtualNodePlan {
  const plan: VirtualNodePlan = { create: [], update: [], delete: [], blocked: [] };
  if (vc.metadata.deletionTimestamp || !vc.spec) return plan;
  const spec = vc.spec;
  const byName = new Map(existing.map((vn) => [vn.metadata.name, vn]));
  for (let i = 0; i < spec.nodes; i++) {
    const name = virtualNodeName(vc, i);
    const vn = byName.get(name);
    if (!vn) {
      plan.create.push({
        apiVersion: API_VERSION,
        kind: 'VirtualNode',
        metadata: {
          name,
          namespace: vc.metadata.namespace,
          labels: { [CLUSTER_LABEL]: vc.metadata.name },
          ownerReferences: [controllerReference(vc)],
        },
        spec: { cluster: vc.metadata.name, index: i, vcpus: spec.node.vcpus, memoryMiB: spec.node.memoryMiB },
      });
    } else if (!ownedBy(vn, vc)) {
      plan.blocked.push(name);
    } else if (!vn.metadata.deletionTimestamp && vn.spec && !vn.spec.physicalNode &&
      (vn.spec.vcpus !== spec.node.vcpus || vn.spec.memoryMiB !== spec.node.memoryMiB)) {
      plan.update.push({ ...vn, spec: { ...vn.spec, vcpus: spec.node.vcpus, memoryMiB: spec.node.memoryMiB } });
    }
  }
  plan.delete = existing
    .filter((vn) => ownedBy(vn, vc) && !vn.metadata.deletionTimestamp && (vn.spec?.index ?? Infinity) >= spec.nodes)
    .sort((a, b) => (b.spec?.index ?? 0) - (a.spec?.index ?? 0));
  return plan;
}

export interface ClusterSummary {
  phase: VCPhase;
  nodes: NonNullable<VirtualClusterStatus['nodes']>;
  ready: ConditionInput;
}

/** Conditions other controllers own that gate Ready, in the order they are reported. */
export const GATES = ['Placed', 'StorageReady', 'NetworkReady', 'Running', 'GuestReady'] as const;
/** Gates that apply only to a VC meant to run. */
const RUNNING_GATES: ReadonlySet<string> = new Set(['Running', 'GuestReady']);

function phaseOf(vn: VirtualNode): VNPhase {
  return vn.status?.phase ?? 'Pending';
}

/**
 * The VC's phase, node list and Ready condition from its owned VirtualNodes (the VC controller
 * owns only these). Ready is False when any of Placed/StorageReady/NetworkReady (and Running and
 * GuestReady, for a VC meant to run) is False on the VC or one of its nodes; a running VC is Ready
 * only once every guest has reported in (GuestReady=True on each of its nodes).
 */
export function summarizeCluster(vc: VirtualCluster, existing: readonly VirtualNode[]): ClusterSummary {
  const want = vc.spec?.nodes ?? 0;
  const state = vc.spec?.state ?? 'Running';
  const mine = existing
    .filter((vn) => ownedBy(vn, vc) && (vn.spec?.index ?? Infinity) < want)
    .sort((a, b) => (a.spec?.index ?? 0) - (b.spec?.index ?? 0));
  const nodes = mine.map((vn) => {
    const n: NonNullable<VirtualClusterStatus['nodes']>[number] = { name: vn.metadata.name, phase: phaseOf(vn) };
    const host = vn.spec?.physicalNode ?? vn.status?.host;
    if (host) n.physicalNode = host;
    if (vn.status?.ip) n.ip = vn.status.ip;
    return n;
  });
  const phases = mine.map(phaseOf);
  const count = (p: VNPhase) => phases.filter((x) => x === p).length;
  const complete = mine.length === want;
  const idle = phases.every((p) => p === 'Pending' || p === 'Scheduled');

  let phase: VCPhase;
  if (vc.metadata.deletionTimestamp) phase = 'Terminating';
  else if (count('Failed') > 0) phase = 'Failed';
  else if (state === 'Running' && complete && count('Running') === want) phase = 'Running';
  else if (state === 'Suspended' && complete && count('Suspended') === want) phase = 'Suspended';
  else if (state === 'Stopped' && complete && phases.every((p) => p === 'Stopped' || p === 'Pending' || p === 'Scheduled')) phase = 'Stopped';
  else if (idle) phase = 'Pending';
  else phase = 'Provisioning';

  const ready = readyCondition(vc, mine, phase, want);
  return { phase, nodes, ready };
}

function readyCondition(vc: VirtualCluster, mine: readonly VirtualNode[], phase: VCPhase, want: number): ConditionInput {
  const state = vc.spec?.state ?? 'Running';
  if (phase === 'Terminating') return { type: 'Ready', status: 'False', reason: 'Terminating', message: 'the virtual cluster is being deleted' };
  if (phase === 'Failed') {
    const failed = mine.filter((vn) => phaseOf(vn) === 'Failed').map((vn) => vn.metadata.name);
    return { type: 'Ready', status: 'False', reason: 'NodesFailed', message: `failed nodes: ${failed.join(', ')}; see vcctl describe vn/<name>` };
  }
  for (const type of GATES) {
    if (RUNNING_GATES.has(type) && state !== 'Running') continue;
    const sources: [string, Condition[] | undefined][] = [
      [`VirtualCluster ${vc.metadata.name}`, vc.status?.conditions],
      ...mine.map((vn): [string, Condition[] | undefined] => [`VirtualNode ${vn.metadata.name}`, vn.status?.conditions]),
    ];
    for (const [who, conds] of sources) {
      const c = getCondition(conds, type);
      if (c?.status === 'False') {
        return { type: 'Ready', status: 'False', reason: c.reason || `Not${type}`, message: `${who}: ${type}=False: ${c.message}` };
      }
    }
  }
  if (phase === state && state === 'Running') {
    // Running is the hypervisor's word; Ready also needs every guest to have reported in.
    const guests = mine.filter((vn) => getCondition(vn.status?.conditions, 'GuestReady')?.status === 'True').length;
    if (guests < want) return { type: 'Ready', status: 'False', reason: 'GuestsBooting', message: `${guests} of ${want} guests reported in` };
  }
  if (phase === state) {
    return { type: 'Ready', status: 'True', reason: `Nodes${state}`, message: `${want} of ${want} nodes ${state}` };
  }
  const at = mine.filter((vn) => phaseOf(vn) === state).length;
  return { type: 'Ready', status: 'False', reason: 'Progressing', message: `${at} of ${want} nodes ${state}` };
}
