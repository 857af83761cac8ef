// The storage controller's side of OCFS2 shared storage (docs/adr/0007): an ocfs2 VC's shared
// volume is an OCFS2 filesystem on an LV of the SAN, made and removed by the storage node (the one
// LVM metadata writer, ADR 0006), which must be a full node (spec.sanDevice). The nodes that run
// the VC's VMs mount and export it (the network hosts controller, reconcilers/network/shared-fs.ts).
//
// - make: the storage node comes online in the o2cb cluster of the full nodes (mkfs.ocfs2 formats
//   for that cluster), then the volume is formatted with one slot per node that may host the VC
//   (ocfs2Slots). Its Volume's status.path is the mount point on every node (/vc/<ns>/<vc>).
// - remove: refused while OCFS2's slot map names a node (the network controller unmounts it
//   everywhere once no VM of the VC runs; the storage controller retries).
// - On a storage node without the SAN disk there is no OCFS2: the VC is refused (StorageReady
//   False, reason Ocfs2NeedsSan), nothing is made.

import type { PhysicalNode, VirtualCluster } from '../../api/types.js';
import type { CacheReader } from '../../controllers/types.js';
import { WaitingError } from '../../controllers/types.js';
import { o2cbOnline, O2CB_TCG_TIMEOUTS, type O2cbTimeouts } from '../../drivers/shared-fs/o2cb.js';
import { Ocfs2SharedFs } from '../../drivers/shared-fs/ocfs2-shared-fs.js';
import type { SharedVolumeRef } from '../../drivers/shared-fs/types.js';
import type { VolumeInfo } from '../../drivers/storage/types.js';
import type { Transport } from '../../drivers/transport/types.js';
import { isFullNode, O2CB_CLUSTER, o2cbMembers, ocfs2Slots, sharedVolumeRef } from '../network/shared-fs-plan.js';

export const OCFS2_NEEDS_SAN = 'Ocfs2NeedsSan';

/** An ocfs2 VC's shared volume as the storage node handles it. */
export class SharedOcfs2Volume {
  readonly fs: Ocfs2SharedFs;
  readonly ref: SharedVolumeRef;
  constructor(
    private readonly vc: VirtualCluster,
    private readonly transport: Transport,
    private readonly node: PhysicalNode,
    private readonly cache: CacheReader,
    private readonly timeouts: O2cbTimeouts = O2CB_TCG_TIMEOUTS,
  ) {
    this.fs = new Ocfs2SharedFs(transport, { cluster: O2CB_CLUSTER, sanDevice: node.spec!.sanDevice });
    this.ref = sharedVolumeRef(vc);
  }

  /** The Volume object's name. */
  get name(): string {
    return this.ref.name;
  }

  exists(): Promise<boolean> {
    return this.fs.exists(this.ref);
  }

  async create(sizeBytes: number): Promise<VolumeInfo> {
    const members = o2cbMembers(this.cache.list<PhysicalNode>('PhysicalNode'));
    await o2cbOnline(this.transport, { name: O2CB_CLUSTER, members, timeouts: this.timeouts });
    await this.fs.create(this.ref, sizeBytes, ocfs2Slots(this.vc, members.length));
    return { path: this.fs.mountPoint(this.ref), format: 'raw' };
  }

  /** Waits (WaitingError SharedVolumeMounted, retried in 10 s) while a node still has it mounted. */
  async remove(): Promise<void> {
    const by = await this.fs.mountedBy(this.ref);
    if (by.length > 0) {
      throw new WaitingError(`the shared volume ${this.ref.namespace}/${this.ref.vc} is still mounted on ${by.join(', ')}; the network controller unmounts it once no VM of the VC runs there`, 'SharedVolumeMounted', 10_000);
    }
    await this.fs.remove(this.ref);
  }
}

/**
 * The VC's SharedOcfs2Volume when its shared storage is ocfs2; undefined for other VCs. Throws the
 * refusal (WaitingError Ocfs2NeedsSan: StorageReady False) when the storage node has no SAN disk,
 * unless the VC is being deleted (then nothing was made on a SAN: undefined).
 */
export function sharedOcfs2For(vc: VirtualCluster, node: PhysicalNode, transport: Transport, cache: CacheReader, timeouts?: O2cbTimeouts): SharedOcfs2Volume | undefined {
  if (vc.spec?.sharedStorage?.filesystem !== 'ocfs2') return undefined;
  if (!isFullNode(node)) {
    if (vc.metadata.deletionTimestamp) return undefined;
    throw new WaitingError(
      `sharedStorage.filesystem ocfs2 needs full nodes with the SAN disk (PhysicalNode spec.sanDevice); the storage node ${node.metadata.name} has none (namespace nodes have no OCFS2): use nfs there`,
      OCFS2_NEEDS_SAN, 60_000,
    );
  }
  return new SharedOcfs2Volume(vc, transport, node, cache, timeouts);
}
