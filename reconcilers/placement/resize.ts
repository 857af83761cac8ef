// Resizing bound VMs without overcommit (pure; planBinding calls it). When a VC's spec.node.vcpus
// or memoryMiB changes, its VMs that are already bound keep their node:
// - while some VM of the VC is active, each node is checked on its own: the new size of every VM
//   of the VC on it must fit in what the node has free (capacity minus status.allocated, after
//   the other changes of the same decision), counting memory always and cores in Strict mode
//   (the mode in force). A node where it fits gets all of them resized (spec and allocation in
//   the same batch); a node where it does not keeps their old size, and its reason is reported
//   (`ResizePending`). A running VM gets its new size at its next start (or `vcctl restart`).
// - once none is active (the VC is Stopped or Suspended), planBinding re-places the whole VC with
//   the new size instead (replaceAll), which may move VMs; if that does not fit either, nothing
//   changes and the VC is Unschedulable.

import type { PhysicalNode, VirtualCluster, VirtualNode } from '../../api/types.js';
import type { Usage } from './engine.js';
import { usageOf, vmUsage } from './plan-binding.js';

export interface Size {
  vcpus: number;
  memoryMiB: number;
}

export function sizeOf(vc: VirtualCluster): Size {
  return { vcpus: vc.spec!.node.vcpus, memoryMiB: vc.spec!.node.memoryMiB };
}

export function hasSize(vn: VirtualNode, s: Size): boolean {
  return vn.spec?.vcpus === s.vcpus && vn.spec?.memoryMiB === s.memoryMiB;
}

export interface InPlaceResize {
  /** VMs resized on their node. */
  resized: VirtualNode[];
  /** Per node that cannot take the new size now: why. */
  held: Map<string, string>;
}

/**
 * Which of `vms` (bound VMs of one VC whose size differs from `size`) can take it on their node now.
 * `pending` is what the same decision already adds to each node's allocation.
 */
export function resizeInPlace(vms: readonly VirtualNode[], size: Size, pns: readonly PhysicalNode[], strict: boolean,
  pending: ReadonlyMap<string, Usage> = new Map()): InPlaceResize {
  const byNode = new Map<string, VirtualNode[]>();
  for (const v of vms) {
    const n = v.spec!.physicalNode!;
    byNode.set(n, [...(byNode.get(n) ?? []), v]);
  }
  const out: InPlaceResize = { resized: [], held: new Map() };
  for (const [node, list] of [...byNode].sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))) {
    const pn = pns.find((p) => p.metadata.name === node);
    if (!pn?.spec) {
      out.held.set(node, 'the node is gone');
      continue;
    }
    // What the node's allocation grows by (a running VM counts at least the size it runs with).
    const grow = {
      cores: list.reduce((s, v) => s + usageOf(size, v).cores - vmUsage(v).cores, 0),
      memoryMiB: list.reduce((s, v) => s + usageOf(size, v).memoryMiB - vmUsage(v).memoryMiB, 0),
    };
    const used = pn.status?.allocated ?? { cores: 0, memoryMiB: 0, vms: 0 };
    const extra = pending.get(node) ?? { cores: 0, memoryMiB: 0, vms: 0 };
    const freeMem = pn.spec.capacity.memoryMiB - used.memoryMiB - extra.memoryMiB;
    const freeCores = pn.spec.capacity.cores - used.cores - extra.cores;
    const why: string[] = [];
    if (grow.memoryMiB > 0 && grow.memoryMiB > freeMem) why.push(`insufficient memory (free ${freeMem} MiB, need ${grow.memoryMiB} MiB more)`);
    if (strict && grow.cores > 0 && grow.cores > freeCores) why.push(`insufficient cores (Strict: free ${freeCores}, need ${grow.cores} more)`);
    if (why.length) out.held.set(node, `${node}: ${why.join(', ')} for ${list.map((v) => v.metadata.name).join(', ')}`);
    else out.resized.push(...list);
  }
  return out;
}
