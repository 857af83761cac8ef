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
//
// Live migration with a handover at the switchover (optional; a port without these methods, or
// whose `needsHandOver(vc)` is false, needs nothing around a live migration). The migration
// controller (migration-controller.ts) calls them in this order for one Migration:
// - `needsHandOver(vc)`: true when a live migration of a VM of this VC must move its volumes'
//   mapping from the source to the target at the switchover (evms, lvm: a snapshot mapped on one
//   node at a time). The controller then needs a hypervisor driver that stops at the switchover
//   (`HypervisorDriver.pausedSwitchover`: Xen's `xl migrate -p`, the domain left paused on the
//   target) and refuses the Migration with a clear reason otherwise (QEMU's driver has no such stop).
//   Suspend and resume elsewhere move the activation too, with any hypervisor.
// - `prepareIncoming(vc, vn, target)`: before the transfer starts (the Migration still Pending),
//   while the domain runs on the source and keeps writing: the VM's volumes made openable on
//   `target` under the same paths (the target's hypervisor opens them when it creates the incoming
//   domain) without anything of the target reading or writing the volumes' state yet (evms: a
//   device of the right size with an error table). Idempotent. If it throws, the Migration fails
//   before anything transferred and `abortIncoming` is called.
// - `handOver(vc, vn, source, target)`: at the switchover, once the domain has stopped on the
//   source for good and waits, complete and paused, on the target (it runs only after this
//   resolves): in-flight writes on `source` complete, the target's mapping becomes the real volume
//   (evms: the snapshot table loaded, the record names `target`), the source's mapping no longer
//   reaches the volume. Idempotent: the controller retries it after a failure (the domain stays
//   paused on the target meanwhile; the source's copy is already gone, so there is no way back);
//   after repeated failures the Migration is Failed with the domain left paused on the target.
//   The source's leftover device goes with `deactivate(vc, vn, source)` afterwards.
// - `abortIncoming(vc, vn, target)`: a migration that failed, timed out or was cancelled before
//   `handOver`: the target's incoming mapping goes; the source's mapping and state are untouched.
//   No-op when nothing was prepared there.

import type { PhysicalNode, VirtualCluster, VirtualNode } from '../../api/types.js';

/** What to do with a volume still mapped on node `holder`: unmap it there first, take it over, or refuse. */
export type HolderFate = { release: PhysicalNode } | 'takeOver' | 'refuse';

export interface VolumeActivation {
  activate(vc: VirtualCluster, vn: VirtualNode, node: PhysicalNode, holder: (name: string) => HolderFate): Promise<void>;
  deactivate(vc: VirtualCluster, vn: VirtualNode, node: PhysicalNode): Promise<void>;
  needsHandOver?(vc: VirtualCluster): boolean;
  prepareIncoming?(vc: VirtualCluster, vn: VirtualNode, target: PhysicalNode): Promise<void>;
  handOver?(vc: VirtualCluster, vn: VirtualNode, source: PhysicalNode, target: PhysicalNode): Promise<void>;
  abortIncoming?(vc: VirtualCluster, vn: VirtualNode, target: PhysicalNode): Promise<void>;
}
