// The contract of a VC's shared filesystem on the physical nodes (paper, section 4.2): one
// filesystem per VC on the shared storage, mounted on every node that runs a VM of the VC and
// re-exported from there to that node's guests over NFS. The guests mount
// `<VC gateway>:<mountPoint>`; every node uses the same mount point and the same NFS fsid for a
// VC, so a guest that moves to another node finds the same export with the same file handles.
//
// Every method acts on the node it is given (storage-node methods on the driver's own transport)
// with names as argv elements only, and is idempotent: called again after success it changes
// nothing; called again after a failure it finishes the job. What a failure leaves is said per
// method.

import type { Transport } from '../transport/types.js';

/** One VC's shared volume. */
export interface SharedVolumeRef {
  namespace: string;
  /** The VC's name. */
  vc: string;
  /** The VC's uid: names the volume on the SAN, derives the NFS fsid. */
  vcUid: string;
  /** The Volume object's name (`<vc>-shared`). */
  name: string;
}

export interface SharedVolumeState {
  /** Mounted at mountPoint on the node (the filesystem of this volume, not another). */
  mounted: boolean;
  /** The subnets it is exported to from the node. */
  exportedTo: string[];
}

export interface SharedFsDriver {
  /** Where the volume is mounted on every node, which is also the path NFS clients mount. Pure. */
  mountPoint(v: SharedVolumeRef): string;
  /**
   * On the storage node: makes the filesystem (`slots`: how many nodes may mount it at once).
   * Present: left as it is (its data kept). Failure: nothing is left (built under a temporary name).
   */
  create(v: SharedVolumeRef, sizeBytes: number, slots: number): Promise<void>;
  /**
   * On the storage node: removes it; refused while any node has it mounted. Absent: no-op.
   * Failure: the volume stays whole.
   */
  remove(v: SharedVolumeRef): Promise<void>;
  /**
   * Mounts it on `node` at mountPoint. Failure: the node may be left with the volume's block
   * device mapped but nothing mounted (unmount clears it).
   */
  mount(v: SharedVolumeRef, node: Transport): Promise<string>;
  /** Unexports it from `node`, then unmounts it and unmaps its device there. Failure: what is left stays as it was or is unexported. */
  unmount(v: SharedVolumeRef, node: Transport): Promise<void>;
  /** Exports the mounted volume from `node` to `clients` (the VC's subnet). Refused when not mounted there. */
  export(v: SharedVolumeRef, node: Transport, clients: string): Promise<void>;
  /** Removes every export of it from `node`. */
  unexport(v: SharedVolumeRef, node: Transport): Promise<void>;
  state(v: SharedVolumeRef, node: Transport): Promise<SharedVolumeState>;
}
