// The storage side of the runtime's VolumeActivation port (reconcilers/runtime/volume-activation.ts):
// a VM's disk and swap volumes mapped on the node that runs it, through the VC's storage driver's
// NodeActivation (evms, lvm). The driver is made on the VM's node itself: activation runs there and
// changes no LVM metadata (ADR 0006), and the record of where a snapshot is active lives in the
// VC's directory on the shared storage root. Drivers without NodeActivation (qcow2, btrfs):
// nothing to map, every node sees the files. A live migration of an evms or lvm VM hands its
// snapshot over at the switchover (prepareIncoming, handOver, abortIncoming: SanVolumes').
//
// Also the one place that says which driver settings come from the storage node (spec.sanDevice),
// so the storage controller and activation build drivers alike.

import type { PhysicalNode, VirtualCluster, VirtualNode } from '../../api/types.js';
import { createStorageDriver, type DriverOptions } from '../../drivers/storage/index.js';
import { DEFAULT_SAN_VG } from '../../drivers/storage/evms-driver.js';
import { vcStorageDir } from '../../drivers/storage/file-volumes.js';
import { StorageError, type NodeActivation, type StorageDriver, type VolumeKey } from '../../drivers/storage/types.js';
import type { VolumeActivation } from '../runtime/volume-activation.js';
import type { TransportSource } from '../runtime/hosts.js';
import { driverOf } from './plan.js';

/**
 * The manager's driver settings with the node's SAN disk (spec.sanDevice) for the SAN drivers:
 * on a node with a SAN disk, `lvm` without a configured VG uses the SAN VG (`vlsan`, shared with
 * evms; each VC's LVs carry its uid).
 */
export function driverOptionsFor(node: PhysicalNode, opts: DriverOptions | undefined): DriverOptions {
  const san = node.spec?.sanDevice;
  if (!san) return opts ?? {};
  return {
    ...opts,
    evms: { ...opts?.evms, sanDevice: opts?.evms?.sanDevice ?? san },
    lvm: { vg: DEFAULT_SAN_VG, ...opts?.lvm, sanDevice: opts?.lvm?.sanDevice ?? san },
  };
}

/** The VC's driver on `node`. */
export function storageDriverOn(vc: VirtualCluster, node: PhysicalNode, transports: TransportSource, opts: DriverOptions | undefined): StorageDriver {
  return createStorageDriver(driverOf(vc), transports.get(node), driverOptionsFor(node, opts));
}

/** The volumes of `vn` a node must map before its domain opens them: its disk, then its swap. */
function vmVolumeKeys(vc: VirtualCluster, vn: VirtualNode, node: PhysicalNode): VolumeKey[] {
  const vcDir = vcStorageDir(node.spec!.storageRoot, vc.metadata.namespace ?? 'default', vc.metadata.name, vc.metadata.uid!);
  return ['disk', 'swap'].map((v) => ({ vcDir, vcUid: vc.metadata.uid!, name: `${vn.metadata.name}-${v}` }));
}

/** A NodeActivation that can hand a snapshot over at a live migration's switchover. */
type HandOverActivation = NodeActivation & Required<Pick<NodeActivation, 'prepareIncoming' | 'handOver'>>;

export function storageActivation(transports: TransportSource, opts?: DriverOptions): VolumeActivation {
  const activationOf = (vc: VirtualCluster, node: PhysicalNode): NodeActivation | undefined =>
    storageDriverOn(vc, node, transports, opts).activation;
  /** Whether the VC's driver hands its snapshots over at a live migration's switchover (evms, lvm; asks no node). */
  const handsOver = (vc: VirtualCluster): boolean => ['evms', 'lvm'].includes(driverOf(vc));
  const handOverOn = (vc: VirtualCluster, node: PhysicalNode): { act: HandOverActivation; on: ReturnType<TransportSource['get']> } => {
    const act = activationOf(vc, node);
    if (!act?.prepareIncoming || !act.handOver) throw new StorageError(`${driverOf(vc)} volumes cannot be handed over at a live migration's switchover`);
    return { act: act as HandOverActivation, on: transports.get(node) };
  };
  return {
    async activate(vc, vn, node, holder) {
      const act = activationOf(vc, node);
      if (!act) return;
      const on = transports.get(node);
      const keys = vmVolumeKeys(vc, vn, node);
      // where the disk (the snapshot, which keeps a record) is mapped now
      const where = await act.activeOn(keys[0]!);
      const fate = where !== undefined && where !== on.host ? holder(where) : 'refuse';
      // moving: every volume unmapped on the node that had them, then mapped here (never reset: the state is on the SAN)
      if (typeof fate === 'object') {
        const there = transports.get(fate.release);
        for (const key of [...keys].reverse()) await act.deactivate(key, there);
      }
      for (const key of keys) await act.activate(key, on, { takeOver: fate === 'takeOver' });
    },
    async deactivate(vc, vn, node) {
      const act = activationOf(vc, node);
      if (!act) return;
      const on = transports.get(node);
      for (const key of vmVolumeKeys(vc, vn, node).reverse()) await act.deactivate(key, on);
    },
    needsHandOver: handsOver,
    // the disk: a device with an error table on the target; the swap (a linear LV, no state of
    // its own) mapped there as it is, beside the source's mapping
    async prepareIncoming(vc, vn, target) {
      const [disk, swap] = vmVolumeKeys(vc, vn, target);
      const { act, on } = handOverOn(vc, target);
      await act.prepareIncoming(disk!, on);
      await act.activate(swap!, on);
    },
    async handOver(vc, vn, source, target) {
      const { act, on } = handOverOn(vc, target);
      await act.handOver(vmVolumeKeys(vc, vn, target)[0]!, transports.get(source), on);
    },
    // the target's incoming device and swap mapping go; the record names the source, so it stays
    async abortIncoming(vc, vn, target) {
      const { act, on } = handOverOn(vc, target);
      for (const key of vmVolumeKeys(vc, vn, target).reverse()) await act.deactivate(key, on);
    },
  };
}
