// The storage controller's decision for one VirtualCluster, as a pure function of what is
// observed: the VC, its OSTemplate, its Volume objects, which volumes exist on the storage root,
// whether any of its VMs is up, and the VC's configuration file. The apply step performs the
// actions in order and plans again until nothing is left (controller.ts).
//
// The paper's five stages (section 4.2) map to the volume roles: (1) `<vc>-original` from the
// template, (2) `<vc>-<i>-disk` snapshots of it, (3) `<vc>-<i>-swap`, (4) `<vc>-<i>-config` (ADR
// 0002), (5) the VC's configuration file `vc.json` on the storage root; plus `<vc>-shared`.
//
// Crash safety: a Volume object is created (Pending) before its volume exists on the storage, and
// a volume leaves the storage before its object goes; so whatever a crash interrupts, each volume
// on the storage has an object that names it, and the next plan finishes the job. Every action is
// idempotent.

import type { ConditionInput } from '../../api/conditions.js';
import type { OSTemplate, StorageDriverName, VirtualCluster, Volume, VolumeRole } from '../../api/types.js';
import { API_VERSION } from '../../api/types.js';
import { CLUSTER_LABEL } from '../../api/labels.js';

export const STORAGE_FINALIZER = 'virtualinux.org/storage';
export const ROLE_LABEL = 'virtualinux.org/volume-role';
/**
 * Where versions before status.configRevision and status.format kept them (read as a fallback
 * for volumes they made; never written now: they cost every volume a metadata write of its own
 * beside its status write, a third of the Volume writes: hack/bench-scale, session 24).
 */
export const CONFIG_REVISION_ANNOTATION = 'virtualinux.org/config-revision';
export const FORMAT_ANNOTATION = 'virtualinux.org/format';

/** The format a volume was made in (status.format, else the annotation of older versions). */
export function volumeFormat(v: Volume | undefined): 'qcow2' | 'raw' | 'dir' | undefined {
  return v?.status?.format ?? (v?.metadata.annotations?.[FORMAT_ANNOTATION] as 'qcow2' | 'raw' | 'dir' | undefined);
}

/** The configuration revision written on a config volume (status.configRevision, else the annotation of older versions). */
export function volumeConfigRevision(v: Volume | undefined): string | undefined {
  return v?.status?.configRevision ?? v?.metadata.annotations?.[CONFIG_REVISION_ANNOTATION];
}

const MiB = 1024 * 1024;

export interface DesiredVolume {
  name: string;
  role: VolumeRole;
  sizeGiB: number;
  source?: string;
  virtualNode?: string;
  index?: number;
}

/** Everything a VC's storage consists of, in provisioning order. */
export function desiredVolumes(vc: VirtualCluster): DesiredVolume[] {
  const n = vc.metadata.name;
  const spec = vc.spec!;
  const out: DesiredVolume[] = [{ name: `${n}-original`, role: 'original', sizeGiB: spec.node.diskGiB }];
  for (let i = 0; i < spec.nodes; i++) {
    const vn = `${n}-${i}`;
    out.push({ name: `${vn}-disk`, role: 'snapshot', sizeGiB: spec.node.diskGiB, source: `${n}-original`, virtualNode: vn, index: i });
  }
  for (let i = 0; i < spec.nodes; i++) {
    const vn = `${n}-${i}`;
    out.push({ name: `${vn}-swap`, role: 'swap', sizeGiB: spec.node.swapMiB / 1024, virtualNode: vn, index: i });
  }
  for (let i = 0; i < spec.nodes; i++) {
    const vn = `${n}-${i}`;
    out.push({ name: `${vn}-config`, role: 'config', sizeGiB: 1 / 1024, virtualNode: vn, index: i });
  }
  const shared = spec.sharedStorage;
  if (shared && shared.filesystem !== 'none') out.push({ name: `${n}-shared`, role: 'shared', sizeGiB: shared.sizeGiB });
  return out;
}

export function driverOf(vc: VirtualCluster): StorageDriverName {
  return vc.spec?.storageDriver ?? 'qcow2';
}

/** The Volume object for a desired volume: labelled, owned (controller) by the VC. */
export function volumeObject(vc: VirtualCluster, d: DesiredVolume): Volume {
  return {
    apiVersion: API_VERSION,
    kind: 'Volume',
    metadata: {
      name: d.name,
      namespace: vc.metadata.namespace,
      labels: { [CLUSTER_LABEL]: vc.metadata.name, [ROLE_LABEL]: d.role },
      ownerReferences: [
        { apiVersion: API_VERSION, kind: 'VirtualCluster', name: vc.metadata.name, uid: vc.metadata.uid!, controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: {
      role: d.role,
      cluster: vc.metadata.name,
      sizeGiB: d.sizeGiB,
      driver: driverOf(vc),
      ...(d.source ? { source: d.source } : {}),
      ...(d.virtualNode ? { virtualNode: d.virtualNode } : {}),
    },
    status: { phase: 'Pending' },
  };
}

export interface StorageObservation {
  vc: VirtualCluster;
  /** Undefined: the OSTemplate named by spec.template does not exist. */
  template: OSTemplate | undefined;
  /** The Volume objects labelled with this VC (and owned by it). */
  volumes: Volume[];
  /** Volume name -> whether it exists on the storage. Names absent here count as absent. */
  present: Record<string, boolean>;
  /** Some VM of the VC is running, starting, migrating or suspending. */
  vmsActive: boolean;
  /** Subnet for the node addresses (spec.network.subnet or status.subnet). */
  subnet: string | undefined;
  /** Desired config revision per node index (from the config disk generator). */
  configRevisions: Record<number, string>;
  /** The content of the VC's vc.json now, and what it should be. */
  vcConfigCurrent: string | undefined;
  vcConfigDesired: string | undefined;
  /** The apply step wants fresh usage figures (time-based, decided outside). */
  usageDue: boolean;
}

export type StorageAction =
  | { type: 'addFinalizer' }
  | { type: 'createObjects'; volumes: Volume[] }
  /** Makes the volumes of one role (one stage), all through one driver call. */
  | { type: 'provision'; role: VolumeRole; names: string[] }
  | { type: 'reset'; name: string }
  /** Writes the first-boot configuration volumes of these node indexes, in one driver call. */
  | { type: 'writeConfig'; volumes: { name: string; index: number }[] }
  /** Template update: remove the files of the snapshots, then of the original (objects stay). */
  | { type: 'invalidate'; names: string[] }
  /** Removes these volumes from the storage (in order, one driver call), then their objects. */
  | { type: 'remove'; names: string[] }
  | { type: 'writeVcConfig' }
  | { type: 'removeVcDir' }
  | { type: 'removeFinalizer' }
  | { type: 'refreshUsage' }
  | { type: 'event'; eventType: 'Normal' | 'Warning'; reason: string; message: string };

export interface StoragePlan {
  actions: StorageAction[];
  /** StorageReady and UpdatePending as they stand once `actions` are done. */
  conditions: ConditionInput[];
  requeueAfterMs?: number;
}

export const STORAGE_READY = 'StorageReady';
export const UPDATE_PENDING = 'UpdatePending';

/**
 * How long a VC being deleted whose VMs still run waits without a look: the change of a VM's
 * phase class (active or not) or its deletion queues the VC (the storage controller's watch of
 * VirtualNodes), so this is a safety net only. A look every 2 s of every such VC (its volumes read
 * from the store and from the storage node) was most of the manager while a delete of 750 VCs
 * stopped their 3,000 VMs: 2,400 store reads a second (hack/bench-scale, session 14).
 */
export const DELETION_WAIT_MS = 30_000;

/**
 * A VC being deleted (with the storage finalizer) waits while some of its VMs are active: its
 * volumes are never removed under a running VM. Undefined when it need not wait. Decided from
 * the VC and the VMs' activity alone, so the controller can settle it without observing the storage.
 */
export function planDeletionWait(vc: VirtualCluster, vmsActive: boolean): StoragePlan | undefined {
  if (!vc.metadata.deletionTimestamp || !vc.metadata.finalizers?.includes(STORAGE_FINALIZER) || !vmsActive) return undefined;
  return {
    actions: [],
    conditions: [{ type: STORAGE_READY, status: 'False', reason: 'Deleting', message: 'waiting for the VMs of the cluster to stop before removing its volumes' }],
    requeueAfterMs: DELETION_WAIT_MS,
  };
}

export function planStorage(o: StorageObservation): StoragePlan {
  const vc = o.vc;
  const byName = new Map(o.volumes.map((v) => [v.metadata.name, v]));
  const has = (name: string): boolean => o.present[name] === true;

  // ---- deletion: volumes leave the storage (snapshots before their original), then the finalizer.
  if (vc.metadata.deletionTimestamp) {
    if (!vc.metadata.finalizers?.includes(STORAGE_FINALIZER)) return { actions: [], conditions: [] };
    const wait = planDeletionWait(vc, o.vmsActive);
    if (wait) return wait;
    const order = (v: Volume): number => (v.spec?.role === 'original' ? 1 : 0);
    const doomed = [...o.volumes].sort((a, b) => order(a) - order(b) || a.metadata.name.localeCompare(b.metadata.name));
    return {
      actions: [
        ...(doomed.length > 0 ? [{ type: 'remove', names: doomed.map((v) => v.metadata.name) } as const] : []),
        { type: 'removeVcDir' },
        { type: 'removeFinalizer' },
      ],
      conditions: [],
    };
  }

  const actions: StorageAction[] = [];
  if (!vc.metadata.finalizers?.includes(STORAGE_FINALIZER)) actions.push({ type: 'addFinalizer' });

  if (!o.template) {
    return {
      actions,
      conditions: [{
        type: STORAGE_READY, status: 'False', reason: 'TemplateNotFound',
        message: `OSTemplate "${vc.spec!.template}" does not exist; create it or fix spec.template`,
      }],
    };
  }
  const revision = o.template.spec!.revision;
  const desired = desiredVolumes(vc);
  const desiredNames = new Set(desired.map((d) => d.name));

  // ---- objects first (crash safety), then volumes that are no longer wanted (scale-down).
  const missing = desired.filter((d) => !byName.has(d.name)).map((d) => volumeObject(vc, d));
  if (missing.length > 0) actions.push({ type: 'createObjects', volumes: missing });
  const unwanted = o.volumes.filter((v) => !desiredNames.has(v.metadata.name)).map((v) => v.metadata.name);
  if (unwanted.length > 0) actions.push({ type: 'remove', names: unwanted });

  const originalName = `${vc.metadata.name}-original`;
  const original = byName.get(originalName);
  const originalReady = has(originalName) && original?.status?.phase === 'Ready';
  const originalRev = original?.status?.templateRevision;
  const running = o.vmsActive || vc.spec!.state === 'Running';
  const conditions: ConditionInput[] = [];

  // ---- template update (paper 3, "centralised management").
  if (originalReady && originalRev !== undefined && originalRev !== revision) {
    if (running) {
      conditions.push({
        type: UPDATE_PENDING, status: 'True', reason: 'TemplateRevisionChanged',
        message: `OSTemplate "${o.template.metadata.name}" is at revision ${revision}, the node disks at ${originalRev}; suspend or stop the cluster to apply it (the nodes' private data will be lost)`,
      });
      return finish(o, actions, conditions, desired);
    }
    const snaps = desired.filter((d) => d.role === 'snapshot' && has(d.name)).map((d) => d.name);
    actions.push(
      { type: 'event', eventType: 'Warning', reason: 'SnapshotsReset', message: `OSTemplate revision ${originalRev} -> ${revision}: resetting ${snaps.length} node disks to the new original; their private data is lost` },
      { type: 'invalidate', names: [...snaps, originalName] },
    );
    return { actions, conditions: [{ type: STORAGE_READY, status: 'False', reason: 'Resetting', message: `applying OSTemplate revision ${revision}` }, notPending()] };
  }
  conditions.push(notPending());

  // ---- stages 1-4 and the shared volume: one action per stage for all the VC's volumes of it
  // (one driver call, so one round trip to the storage node where the driver can).
  const missingOf = new Map<VolumeRole, string[]>();
  const resets: StorageAction[] = [];
  const configs: { name: string; index: number }[] = [];
  for (const d of desired) {
    const v = byName.get(d.name);
    const ready = has(d.name) && v?.status?.phase === 'Ready' && !!v.status.path;
    if (d.role === 'snapshot') {
      if (!originalReady && !has(d.name)) continue; // after the original exists
      if (ready && v!.status!.templateRevision !== undefined && originalRev !== undefined && v!.status!.templateRevision !== originalRev) {
        if (!running) resets.push({ type: 'reset', name: d.name });
        continue;
      }
    }
    if (d.role === 'config') {
      if (!o.subnet) continue; // node addresses unknown yet
      const want = o.configRevisions[d.index!];
      if (!ready || volumeConfigRevision(v) !== want) configs.push({ name: d.name, index: d.index! });
      continue;
    }
    if (!ready) missingOf.set(d.role, [...(missingOf.get(d.role) ?? []), d.name]);
  }
  const provision = (role: VolumeRole): StorageAction[] => {
    const names = missingOf.get(role);
    return names ? [{ type: 'provision', role, names }] : [];
  };
  actions.push(
    ...provision('original'), ...provision('snapshot'), ...resets, ...provision('swap'),
    ...(configs.length > 0 ? [{ type: 'writeConfig', volumes: configs } as const] : []),
    ...provision('shared'),
  );
  return finish(o, actions, conditions, desired);
}

function notPending(): ConditionInput {
  return { type: UPDATE_PENDING, status: 'False', reason: 'UpToDate', message: '' };
}

function finish(o: StorageObservation, actions: StorageAction[], conditions: ConditionInput[], desired: DesiredVolume[]): StoragePlan {
  const work = actions.some((a) => a.type !== 'addFinalizer' && a.type !== 'event');
  if (!work && o.vcConfigDesired !== undefined && o.vcConfigCurrent !== o.vcConfigDesired) {
    actions.push({ type: 'writeVcConfig' });
  }
  if (!work && o.usageDue) actions.push({ type: 'refreshUsage' });
  const byName = new Map(o.volumes.map((v) => [v.metadata.name, v]));
  const notReady = desired.filter((d) => {
    const v = byName.get(d.name);
    return !(o.present[d.name] && v?.status?.phase === 'Ready');
  });
  if (work || notReady.length > 0) {
    const waitingForSubnet = !o.subnet && notReady.every((d) => d.role === 'config');
    conditions.unshift(
      waitingForSubnet
        ? { type: STORAGE_READY, status: 'False', reason: 'WaitingForSubnet', message: 'the node configuration volumes need the VC subnet (spec.network.subnet or one allocated by the network controller)' }
        : { type: STORAGE_READY, status: 'False', reason: 'Provisioning', message: `${notReady.length} of ${desired.length} volumes not ready` },
    );
    return { actions, conditions, ...(waitingForSubnet && !work ? { requeueAfterMs: 5_000 } : {}) };
  }
  conditions.unshift({ type: STORAGE_READY, status: 'True', reason: 'Provisioned', message: `${desired.length} volumes ready` });
  return { actions, conditions };
}

/** Bytes of a volume of `sizeGiB` (swap sizes come in MiB and stay exact). */
export function volumeBytes(sizeGiB: number): number {
  return Math.round(sizeGiB * 1024) * MiB;
}

// ---- hold-off after a rollback ----
//
// After a rolled-back attempt (a full storage, a missing template image) the VC is left alone for
// ROLLBACK_HOLD_MS unless its spec or its OSTemplate changes; otherwise the rollback's own writes
// (the Volume objects it removed, the condition) would start the next attempt at once. The hold is
// stored on the VC (ROLLBACK_ANNOTATION), so it is seen by whichever manager leads next.

/** On a VC whose last storage attempt was rolled back: a RollbackMark as JSON. */
export const ROLLBACK_ANNOTATION = 'virtualinux.org/storage-rolled-back';
/** How long a VC rests after a rolled-back attempt (unless its spec or template changes). */
export const ROLLBACK_HOLD_MS = 60_000;

export interface RollbackMark {
  /** When the attempt was rolled back (ISO 8601). */
  at: string;
  /** The VC's metadata.generation then. */
  generation?: number;
  /** The OSTemplate's resourceVersion then (absent: there was none). */
  templateVersion?: string;
}

/** The ROLLBACK_ANNOTATION value for a rollback of `vc` now. */
export function rollbackMark(vc: VirtualCluster, template: OSTemplate | undefined, now: Date): string {
  const mark: RollbackMark = {
    at: now.toISOString(),
    ...(vc.metadata.generation !== undefined ? { generation: vc.metadata.generation } : {}),
    ...(template?.metadata.resourceVersion !== undefined ? { templateVersion: template.metadata.resourceVersion } : {}),
  };
  return JSON.stringify(mark);
}

/**
 * How much longer (ms) the VC is held after a rollback, or undefined when it is not: no mark (or
 * an unreadable one), the hold is over, the VC is being deleted, or its spec (generation) or its
 * OSTemplate (resourceVersion, or its appearing or going) changed since.
 */
export function rollbackHoldMs(vc: VirtualCluster, template: OSTemplate | undefined, now: Date): number | undefined {
  const raw = vc.metadata.annotations?.[ROLLBACK_ANNOTATION];
  if (raw === undefined || vc.metadata.deletionTimestamp) return undefined;
  let mark: Partial<RollbackMark>;
  try {
    mark = JSON.parse(raw) as Partial<RollbackMark>;
  } catch {
    return undefined;
  }
  const at = typeof mark.at === 'string' ? Date.parse(mark.at) : NaN;
  const wait = at + ROLLBACK_HOLD_MS - now.getTime();
  if (!(wait > 0)) return undefined;
  if (mark.generation !== vc.metadata.generation) return undefined;
  if (mark.templateVersion !== template?.metadata.resourceVersion) return undefined;
  return wait;
}
