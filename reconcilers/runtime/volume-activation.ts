// The runtime's port to the storage layer's per-node activation (paper, section 3.2): with the SAN
// block drivers (evms) a VM's disk exists on a node only once mapped there, and must be mapped on
// exactly the node that runs the VM. The runtime calls this around the domain's life on a node;
// what "mapping" means is the storage layer's business (reconcilers/storage/activation.ts adapts
// the storage driver's NodeActivation to it), so the runtime imports no storage driver.
//
// Contract:
// - `activate(vc, vn, node, holder)`: before a domain of `vn` starts or resumes on `node`, its
//   volumes are mapped there (idempotent). A volume still recorded as mapped on another node is
//   dealt with as `holder(name)` says: `release` (that node runs no domain of the VM and can be
//   asked: unmap it there first, its state is on the SAN), `takeOver` (that node is known dead,
//   fenced) or `refuse` (ActiveElsewhereError: the caller fails the action and retries later).
//   Volumes of drivers without per-node activation: nothing to do.
// - `deactivate(vc, vn, node)`: after the domain of `vn` is gone from `node` (powered off,
//   suspended to disk, destroyed), its volumes are unmapped there; their state stays on the SAN.
//   Not mapped there: no-op.
// - `liveMigrationRefusal(vc)`: why a VM of this VC cannot be live-migrated by the runtime (its
//   volumes would need a handover at the switchover that the migration flow does not make yet),
//   or undefined. Suspend and resume elsewhere move the activation instead.

import type { PhysicalNode, VirtualCluster, VirtualNode } from '../../api/types.js';

/** What to do with a volume still mapped on node `holder`: unmap it there first, take it over, or refuse. */
export type HolderFate = { release: PhysicalNode } | 'takeOver' | 'refuse';

export interface VolumeActivation {
  activate(vc: VirtualCluster, vn: VirtualNode, node: PhysicalNode, holder: (name: string) => HolderFate): Promise<void>;
  deactivate(vc: VirtualCluster, vn: VirtualNode, node: PhysicalNode): Promise<void>;
  liveMigrationRefusal(vc: VirtualCluster): string | undefined;
}
