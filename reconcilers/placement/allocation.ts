// What a PhysicalNode's status.allocated must be, from the objects that take its resources:
// - every VirtualNode bound to it (spec.physicalNode), also while it is being deleted (its VM
//   may still run until its finalizers are done);
// - every Migration moving a VM onto it that is neither Failed nor already applied (the
//   reservation drain makes; once placement re-binds the VM after a Succeeded migration it marks
//   the Migration applied and the VM counts as bound instead).

import type { Migration, VirtualNode } from '../../api/types.js';
import { addUsage, vmUsage, ZERO } from './plan-binding.js';
import type { Usage } from './engine.js';

/** Annotation placement sets on a Migration once its VM is bound to the target. */
export const MIGRATION_APPLIED = 'virtualinux.org/placement-applied';

/** Whether a Migration still reserves room on its target. */
export function migrationReserves(m: Migration, vn: VirtualNode | undefined): boolean {
  if (!vn || !m.spec) return false;
  if (m.status?.phase === 'Failed') return false;
  if (m.metadata.annotations?.[MIGRATION_APPLIED] === 'true') return false;
  return vn.spec?.physicalNode !== m.spec.targetNode;
}

/** The allocation of every node that something takes room on (absent nodes: nothing). */
export function computeAllocations(
  vns: readonly VirtualNode[], migrations: readonly Migration[],
): Map<string, Usage> {
  const out = new Map<string, Usage>();
  const add = (node: string, vn: VirtualNode) => out.set(node, addUsage(out.get(node) ?? ZERO, vmUsage(vn)));
  const byKey = new Map<string, VirtualNode>();
  for (const v of vns) {
    byKey.set(`${v.metadata.namespace ?? ''}/${v.metadata.name}`, v);
    if (v.spec?.physicalNode) add(v.spec.physicalNode, v);
  }
  for (const m of migrations) {
    if (!m.spec) continue;
    const vn = byKey.get(`${m.metadata.namespace ?? ''}/${m.spec.virtualNode}`);
    if (migrationReserves(m, vn)) add(m.spec.targetNode, vn!);
  }
  return out;
}

/**
 * computeAllocations(vns, migrations).get(node), in one pass that builds nothing for the other
 * nodes: the VMs bound to `node`, then the Migrations onto it with their VMs looked up by name.
 * (Was the whole map, a key string and a usage per VM of the cluster: the migration controller
 * asks it for a target in every reconcile, and during a drain of 960 migrations over 3,000 VMs
 * that was seconds of the manager: hack/bench-scale CPU profile, session 14.)
 */
export function computeAllocation(
  node: string, vns: readonly VirtualNode[], migrations: readonly Migration[],
): Usage {
  let used: Usage = ZERO;
  // The VMs the Migrations onto `node` move, by name then namespace (several may name one VM).
  let moving: Map<string, Migration[]> | undefined;
  for (const m of migrations) {
    if (m.spec?.targetNode !== node) continue;
    moving ??= new Map();
    const list = moving.get(m.spec.virtualNode);
    if (list) list.push(m);
    else moving.set(m.spec.virtualNode, [m]);
  }
  // Each Migration's VM as computeAllocations finds it: the last VM of that namespace/name.
  const vmOf = new Map<Migration, VirtualNode>();
  for (const v of vns) {
    if (v.spec?.physicalNode === node) used = addUsage(used, vmUsage(v));
    const ms = moving?.get(v.metadata.name);
    if (ms) for (const m of ms) if ((m.metadata.namespace ?? '') === (v.metadata.namespace ?? '')) vmOf.set(m, v);
  }
  if (moving) {
    for (const ms of moving.values()) {
      for (const m of ms) {
        const vn = vmOf.get(m);
        if (migrationReserves(m, vn)) used = addUsage(used, vmUsage(vn!));
      }
    }
  }
  return used;
}
