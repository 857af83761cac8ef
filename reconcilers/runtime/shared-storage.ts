// How a VC's guests reach its shared storage, which decides whether their VMs can move.
// - nfs: over NFSv4 from the node they run on, exported to the VC's subnet at its gateway address:
//   nfs-ganesha serving a directory (sharedStorage.filesystem nfs; ADR 0005), or the node's kernel
//   NFS server re-exporting the VC's OCFS2 volume mounted there (ocfs2, full nodes only; ADR 0007).
//   Nothing in the hypervisor: live migration and suspend keep working, the guest reconnects to the
//   same address on its new node, which exports the same files with the same fsid.
// (The virtio-9p stand-in that an ocfs2 VC had before OCFS2 was real is gone.)

import type { VirtualCluster } from '../../api/types.js';

/** Why a VM of this VC cannot be live-migrated or suspended because of its shared storage: never now (kept for the callers' refusal path). */
export function immovableReason(_vc: VirtualCluster | undefined): string | undefined {
  return undefined;
}
