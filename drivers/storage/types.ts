// The storage driver contract: the VirtuaLinux disk abstraction layer (paper, sections 3 and 4.2).
// A VC's storage is one read-only *original* volume made from its OSTemplate, one independent
// copy-on-write *snapshot* per node (its private root disk), one swap volume and one first-boot
// configuration volume (ADR 0002) per node, and one shared volume.
//
// Every driver acts through the Transport of a node that sees the storage root (the SAN is shared,
// so any such node will do). Volumes are addressed by a VolumeKey whose location is derived only
// from the VC's uid and the volume's name, so a retry after a crash finds the earlier work.
//
// Contract common to every method:
// - Idempotent: calling it again with the same arguments after success changes nothing and
//   returns the same result; calling it again after a failure or a crash finishes the job.
// - Atomic where the tools allow: a volume is built under a temporary name and renamed into place,
//   so the final path exists only when the volume is complete. A failed call removes what it made
//   (its temporary); a crash may leave a temporary, which the next call of the same method for the
//   same key removes before it starts. `remove` also removes any temporary of the key.
// - A full storage root surfaces as StorageFullError, a missing template as TemplateNotFoundError;
//   other failures as Error with the failing command and its stderr in the message.
// - The `...All` methods do for many keys of one VC what the single-key method does for one, with
//   the same contract per key, in one round trip to the node where the driver can (each command is
//   an SSH round trip; the controller calls them once per stage). On failure the keys done before
//   the failing one stay done, the failing key is left as its single-key method leaves it, and
//   the later keys are not touched.

import type { StorageDriverName } from '../../api/types.js';
import type { Transport } from '../transport/types.js';
import { NamedError } from '../../api/errors.js';

export type { StorageDriverName };

/** Identifies one volume of one VC. */
export interface VolumeKey {
  /** The VC's directory on the storage root: `<root>/vcs/<ns>/<name>-<uid>` (see vcStorageDir). */
  vcDir: string;
  /** The VC's uid (LVM names its logical volumes after it). */
  vcUid: string;
  /** The Volume object's name, e.g. `stripes-original`, `stripes-0-disk`. A DNS-1123 label. */
  name: string;
}

/** Where an original comes from: an OSTemplate's spec.image. */
export interface TemplateSource {
  /** A disk image on a path the storage node sees. */
  path?: string;
  format?: 'qcow2' | 'raw';
  /** A root filesystem tarball; it is unpacked into a fresh ext4 image of `sizeBytes`. */
  tarball?: string;
  /** Size of the image built from a tarball; default 1 GiB. */
  sizeBytes?: number;
}

/** One config volume to write (StorageDriver.writeConfig): `bytes`, then zeros up to `sizeBytes`. */
export interface ConfigItem {
  key: VolumeKey;
  bytes: Buffer;
  sizeBytes?: number;
}

export interface VolumeInfo {
  /** The file or block device the hypervisor attaches. */
  path: string;
  /** Disk format of `path` as the hypervisor must open it. Directories (shared nfs) say 'dir'. */
  format: 'qcow2' | 'raw' | 'dir';
}

export interface StorageDriver {
  readonly name: StorageDriverName;
  /** The node the driver acts on. */
  readonly transport: Transport;

  /**
   * Where the volume lives (a file, a directory, a btrfs subvolume or an LV device), derived from
   * the key only. Pure. The path a hypervisor attaches is the VolumeInfo.path a method returns.
   */
  pathOf(key: VolumeKey): string;

  /**
   * Stage 1: the VC's original volume, a full copy of the template, left read-only.
   * Fails with TemplateNotFoundError when the template is absent. Already present: returns it
   * without looking at the template again (an update goes through remove + createOriginal).
   */
  createOriginal(key: VolumeKey, source: TemplateSource): Promise<VolumeInfo>;

  /**
   * Stage 2: an independent writable copy-on-write volume of `original`. Writes to it never reach
   * the original or other snapshots. Already present: returned unchanged (private data kept).
   */
  snapshot(original: VolumeKey, key: VolumeKey): Promise<VolumeInfo>;

  /**
   * Stage 2 for a whole VC: `snapshot` for every key (those that exist are left alone), and what
   * each returns, in order.
   */
  snapshotAll(original: VolumeKey, keys: readonly VolumeKey[]): Promise<VolumeInfo[]>;

  /**
   * Replaces snapshot `key` by a fresh snapshot of the current `original`: its private data is
   * lost. The new snapshot is complete before the old one goes (no window without a disk).
   */
  reset(original: VolumeKey, key: VolumeKey): Promise<VolumeInfo>;

  /** Stage 3: a swap volume of `sizeBytes`, formatted with mkswap. */
  createSwap(key: VolumeKey, sizeBytes: number): Promise<VolumeInfo>;
  /** `createSwap` for every key, in order. */
  createSwapAll(keys: readonly VolumeKey[], sizeBytes: number): Promise<VolumeInfo[]>;

  /**
   * Stage 4: the first-boot configuration volume (ADR 0002), written atomically: `sizeBytes` long
   * (default `bytes.length`, never less), `bytes` then zeros. The caller need not hold the zeros
   * (a config disk is 1 MiB of which a few KiB are content). Present with other content: replaced
   * (the content is derived, not user data).
   */
  writeConfig(key: VolumeKey, bytes: Buffer, sizeBytes?: number): Promise<VolumeInfo>;
  /** `writeConfig` for every item, in order. */
  writeConfigAll(items: readonly ConfigItem[]): Promise<VolumeInfo[]>;

  /**
   * The shared volume of an `nfs` VC: a directory on the storage root that the VC's NFS server
   * exports to the guests (ADR 0005). An `ocfs2` VC's shared volume is not a driver's: the
   * storage controller makes it on the SAN (reconcilers/storage/shared-ocfs2.ts, ADR 0007).
   */
  createShared(key: VolumeKey): Promise<VolumeInfo>;

  /** Removes the volume and any temporary of it. Absent: no-op. */
  remove(key: VolumeKey): Promise<void>;
  /** `remove` for every key, in order (snapshots before their original). */
  removeAll(keys: readonly VolumeKey[]): Promise<void>;

  /** Bytes the volume occupies on the storage (not its virtual size). Absent: 0. */
  usage(key: VolumeKey): Promise<number>;
  /** `usage` of every key, in order. */
  usageAll(keys: readonly VolumeKey[]): Promise<number[]>;

  exists(key: VolumeKey): Promise<boolean>;
  /** `exists` of every key, in order. */
  existsAll(keys: readonly VolumeKey[]): Promise<boolean[]>;

  /** Present for drivers whose volumes a node must map before a hypervisor there opens them. */
  readonly activation?: NodeActivation;
}

/**
 * Per-node activation (evms, lvm): the volumes are block devices on the SAN disk that exist on a
 * node only once mapped there (paper, section 3.2). A snapshot is active on at most one node at a
 * time: the node that runs its VM. Where it is active is recorded on the shared storage (beside
 * the VC's other files), so any node can tell; the record is written by the activating node after
 * the device is mapped and removed after it is unmapped.
 *
 * - `activate` maps the volume on `on` and returns the path a hypervisor there opens. Idempotent
 *   on the same node. A snapshot recorded as active on another node is refused (ActiveElsewhereError)
 *   unless `takeOver` (that node is known to be dead, fenced): moving goes deactivate, then activate.
 *   Activation never resets a snapshot: its state (the exceptions) is read from the SAN.
 * - `deactivate` unmaps it on `on` (its state is on the SAN: nothing is lost) and clears the
 *   record when it names `on`. Not active there: no-op.
 * - `activeOn`: the node the record names, or undefined.
 * `reset` and `remove` of a snapshot active on another node are refused (ActiveElsewhereError);
 * one active on the driver's own node is deactivated first.
 */
export interface NodeActivation {
  activate(key: VolumeKey, on: Transport, opts?: { takeOver?: boolean }): Promise<VolumeInfo>;
  deactivate(key: VolumeKey, on: Transport): Promise<void>;
  activeOn(key: VolumeKey): Promise<string | undefined>;
  /**
   * Live migration (optional; evms and lvm, SanVolumes): a snapshot's own device made openable on `to` under the same
   * path before the transfer, reading and writing nothing of the snapshot yet (an `error` table).
   * Idempotent. Undone by `deactivate(key, to)` (the record names another node: it stays).
   */
  prepareIncoming?(key: VolumeKey, to: Transport): Promise<VolumeInfo>;
  /**
   * At the switchover (the domain stopped on `from`, paused on `to`): the mapping on `from`
   * flushed and no longer reaching the snapshot, the snapshot mapped on `to`, the record naming
   * `to`. ActiveElsewhereError when the record names neither; `from`'s leftover device goes with
   * `deactivate(key, from)`.
   */
  handOver?(key: VolumeKey, from: Transport, to: Transport): Promise<void>;
}

export class StorageError extends NamedError {}
/** The storage root (or volume group) ran out of space. */
export class StorageFullError extends StorageError {}
/** The template's image or tarball does not exist on the storage node. */
export class TemplateNotFoundError extends StorageError {}
/** The volume is mapped on another node (NodeActivation): deactivate it there first. */
export class ActiveElsewhereError extends StorageError {}
