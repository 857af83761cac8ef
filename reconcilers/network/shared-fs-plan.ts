// OCFS2 shared storage on full nodes (paper, section 4.2; docs/adr/0007), as pure functions of the
// cache and of what a node has: which PhysicalNodes form the o2cb cluster, how many slots a VC's
// volume is formatted with, and the steps that bring one node's OCFS2 mounts, kernel NFS exports
// and o2cb registration to what the VMs placed on it need.
//
// Who does what (ADR 0007, "Who owns what"): the storage controller makes and removes the VC's
// OCFS2 volume on the SAN (the one LVM metadata writer); the network hosts controller, per
// PhysicalNode, carries out planSharedFsNode before it makes the node's taps, so a VM's tap (which
// the runtime waits for before it boots or switches a migration over) comes only after the VC's
// volume is mounted and exported on that node.
//
// Rules of the plan:
// - A full node (spec.sanDevice) that runs a VM of an ocfs2 VC, or is the target of its live
//   migration, mounts the VC's volume at /vc/<namespace>/<vc> and exports it over its kernel NFS
//   server to the VC's subnet, once the volume is made (its Volume Ready) — before that, nothing.
// - A mounted volume of ours that no VM here needs any more (moved away, VC deleted or being
//   deleted) is unexported and unmounted.
// - The node is online in the o2cb cluster (every full node a member, so o2net reaches any
//   mounter) while it mounts anything; it goes offline when it has nothing mounted and nothing to
//   mount, unless `keepOnline` (it is the storage node and a VC's volume is still to be formatted).

import type { PhysicalNode, VirtualCluster, Volume } from '../../api/types.js';
import type { CacheReader } from '../../controllers/types.js';
import type { O2cbMember } from '../../drivers/shared-fs/o2cb.js';
import type { SharedVolumeRef } from '../../drivers/shared-fs/types.js';
import type { SharedFsNodeState } from '../../drivers/shared-fs/node-state.js';
import { hasSubnetConflict } from './subnet-allocator.js';
import type { VmNetwork } from './host-plan.js';

/** The o2cb cluster of the full nodes (one per deployment: a node is in one o2cb cluster at a time). */
export const O2CB_CLUSTER = 'virtualinux';

/** A full node: one with the SAN disk (spec.sanDevice), hence OCFS2 and a kernel NFS server. */
export function isFullNode(pn: PhysicalNode | undefined): boolean {
  return !!pn?.spec?.sanDevice;
}

/**
 * The o2cb members: every full node whose address is an IPv4 address, numbered in natural name
 * order (so the numbers hold while nodes are only added with names that sort after the others).
 */
export function o2cbMembers(nodes: readonly PhysicalNode[]): O2cbMember[] {
  const collator = new Intl.Collator('en', { numeric: true });
  return nodes
    .filter((n) => isFullNode(n) && !n.metadata.deletionTimestamp && /^\d{1,3}(\.\d{1,3}){3}$/.test(n.spec!.address))
    .sort((a, b) => collator.compare(a.metadata.name, b.metadata.name))
    .map((n, number) => ({ name: n.metadata.name, address: n.spec!.address, number }));
}

/** `mkfs.ocfs2 -N`: the most nodes that can host the VC at once (its VMs, at most every full node). */
export function ocfs2Slots(vc: VirtualCluster, fullNodes: number): number {
  return Math.max(1, Math.min(vc.spec?.nodes ?? 1, fullNodes, 255));
}

/** The SharedVolumeRef of a VC's shared volume. */
export function sharedVolumeRef(vc: VirtualCluster): SharedVolumeRef {
  const name = vc.metadata.name;
  return { namespace: vc.metadata.namespace ?? 'default', vc: name, vcUid: vc.metadata.uid!, name: `${name}-shared` };
}

/** A VC whose shared storage is OCFS2. */
export interface Ocfs2Share {
  /** `<namespace>/<vc>`, as VmNetwork.cluster. */
  cluster: string;
  ref: SharedVolumeRef;
  /** Its volume is made on the SAN (the shared Volume is Ready); before that no node mounts it. */
  made: boolean;
}

/**
 * Every ocfs2 VC of the cache (a VC in a subnet conflict is left out, like its VMs). A VC being
 * deleted is left out too, so every node unmounts its volume: its VirtualNodes go only once the
 * VC is gone, and the storage controller removes the volume (and lets the VC go) only once no node
 * has it mounted; waiting for the VMs' objects here would wait forever.
 */
export function observedOcfs2Shares(cache: CacheReader): Ocfs2Share[] {
  const out: Ocfs2Share[] = [];
  for (const vc of cache.list<VirtualCluster>('VirtualCluster')) {
    if (vc.spec?.sharedStorage?.filesystem !== 'ocfs2' || !vc.metadata.uid || hasSubnetConflict(vc) || vc.metadata.deletionTimestamp) continue;
    const ns = vc.metadata.namespace ?? 'default';
    const vol = cache.get<Volume>({ kind: 'Volume', namespace: ns, name: `${vc.metadata.name}-shared` });
    const made = vol?.spec?.role === 'shared' && vol.spec.cluster === vc.metadata.name && vol.status?.phase === 'Ready';
    out.push({ cluster: `${ns}/${vc.metadata.name}`, ref: sharedVolumeRef(vc), made });
  }
  return out;
}

export type SharedFsStep =
  | { type: 'online'; members: O2cbMember[] }
  /** Mount (when not mounted) and export to `clients` (when not exported so); `unexportFirst`: exported to other clients now. */
  | { type: 'serve'; cluster: string; ref: SharedVolumeRef; clients: string; unexportFirst: boolean }
  /** Unexport and unmount. */
  | { type: 'unmount'; ref: SharedVolumeRef }
  | { type: 'offline' };

export interface SharedFsNodePlan {
  steps: SharedFsStep[];
  /** The ocfs2 VCs (`<ns>/<vc>`) with a VM here whose volume cannot be served here yet (not made). */
  waiting: string[];
}

export interface SharedFsNodeInput {
  host: string;
  vms: readonly VmNetwork[];
  shares: readonly Ocfs2Share[];
  members: readonly O2cbMember[];
  /** What the node has; mounts already mapped to our volumes (undefined ref: not ours). */
  observed: Pick<SharedFsNodeState, 'cluster' | 'members' | 'nfs'> & { mounts: { mountPoint: string; ref?: SharedVolumeRef }[] };
  mountPoint(ref: SharedVolumeRef): string;
  keepOnline: boolean;
}

export function planSharedFsNode(i: SharedFsNodeInput): SharedFsNodePlan {
  const wanted = new Map<string, { share: Ocfs2Share; clients: string }>();
  const waiting: string[] = [];
  const sharesByCluster = new Map(i.shares.map((s) => [s.cluster, s]));
  for (const vm of i.vms) {
    if (vm.host !== i.host && vm.incomingHost !== i.host) continue;
    const share = sharesByCluster.get(vm.cluster);
    if (!share || wanted.has(share.cluster)) continue;
    if (!share.made) {
      if (!waiting.includes(share.cluster)) waiting.push(share.cluster);
      continue;
    }
    wanted.set(share.cluster, { share, clients: vm.subnet });
  }
  const steps: SharedFsStep[] = [];
  const mounted = new Map(i.observed.mounts.filter((m) => m.ref).map((m) => [m.mountPoint, m.ref!]));
  // unmounts first: a VC that left frees its slot before another is mounted
  for (const [mp, ref] of [...mounted].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const w = [...wanted.values()].find((x) => i.mountPoint(x.share.ref) === mp);
    if (!w || w.share.ref.vcUid !== ref.vcUid) steps.push({ type: 'unmount', ref });
  }
  const serves: SharedFsStep[] = [];
  for (const { share, clients } of [...wanted.values()].sort((a, b) => (a.share.cluster < b.share.cluster ? -1 : 1))) {
    const mp = i.mountPoint(share.ref);
    const here = mounted.get(mp);
    const exportedTo = i.observed.nfs.exports.filter((e) => e.path === mp).map((e) => e.clients);
    const served = here?.vcUid === share.ref.vcUid && exportedTo.length === 1 && exportedTo[0] === clients;
    if (!served) serves.push({ type: 'serve', cluster: share.cluster, ref: share.ref, clients, unexportFirst: exportedTo.some((c) => c !== clients) });
  }
  const memberNames = i.members.map((m) => m.name).sort();
  const online = i.observed.cluster === O2CB_CLUSTER && JSON.stringify(i.observed.members) === JSON.stringify(memberNames);
  // again before every mount: o2cbOnline is idempotent and adds members that joined since
  if (wanted.size > 0 && (!online || serves.length > 0)) steps.push({ type: 'online', members: [...i.members] });
  steps.push(...serves);
  const leftMounted = i.observed.mounts.some((m) => !m.ref); // not ours: keeps the heartbeat alive
  if (wanted.size === 0 && !i.keepOnline && !leftMounted && i.observed.cluster === O2CB_CLUSTER) steps.push({ type: 'offline' });
  return { steps, waiting };
}
