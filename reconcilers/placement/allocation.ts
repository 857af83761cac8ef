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

export function computeAllocation(
  node: string, vns: readonly VirtualNode[], migrations: readonly Migration[],
): Usage {
  return computeAllocations(vns, migrations).get(node) ?? ZERO;
}
