// How a VC's guests reach its shared storage, which decides whether their VMs can move.
// - nfs: over NFSv4 from the node they run on (nfs-ganesha, exported to the VC's subnet at its
//   gateway address; docs/adr/0005-shared-storage-over-nfs.md). Nothing in QEMU: live migration
//   and suspend keep working, the guest reconnects to the same address on its new node.
// - virtio-9p: a directory passed through QEMU; the stand-in for OCFS2, whose kernel module this
//   machine lacks. QEMU can neither migrate nor save a guest with a mounted 9p share.

import type { VirtualCluster } from '../../api/types.js';

export type SharedStorageTransport = 'nfs' | 'virtio-9p' | 'none';

export function sharedStorageTransport(vc: VirtualCluster | undefined): SharedStorageTransport {
  const fs = vc?.spec?.sharedStorage?.filesystem;
  if (!fs || fs === 'none') return 'none';
  return fs === 'nfs' ? 'nfs' : 'virtio-9p';
}

/** Why a VM of this VC cannot be live-migrated or suspended, or undefined when it can. */
export function immovableReason(vc: VirtualCluster | undefined): string | undefined {
  return sharedStorageTransport(vc) === 'virtio-9p'
    ? `the guest has the VC shared storage (${vc!.spec!.sharedStorage!.filesystem}) mounted over virtio-9p, which QEMU cannot migrate or save; use sharedStorage.filesystem nfs or none for VCs that are migrated or suspended`
    : undefined;
}
