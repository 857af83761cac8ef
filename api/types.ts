// The objects of API.md as TypeScript types. The CRDs in crds/ are the source of truth for
// validation and defaults; these types mirror them for the code. Keep the two in step.

export const GROUP = 'virtualinux.org';
export const API_VERSION = 'virtualinux.org/v1alpha1';

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  uid?: string;
  /** The store revision of the last write of this object, as a decimal string. */
  resourceVersion?: string;
  /** Increases on every change of spec (and only of spec). */
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** Any stored object. */
export interface ApiObject<Spec = unknown, Status = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: Spec;
  status?: Status;
}

// ---- PhysicalNode -------------------------------------------------------------------------

export interface PhysicalNodeSpec {
  address: string;
  ssh: { port: number; user: string; identityFile?: string; hostKey: string };
  capacity: { cores: number; memoryMiB: number };
  maxVMs?: number;
  /** `sim`: a simulated host (benchmarks only, with transport `sim`; not for production). */
  hypervisor: 'qemu' | 'xen' | 'sim';
  storageRoot: string;
  /** Extension: the hypervisor's per-domain run files on this node; default /run/virtualinux. */
  runRoot?: string;
  /** Extension: the shared SAN block device on this node (full testbed nodes: /dev/disk/by-id/virtio-vl-san). */
  sanDevice?: string;
  unschedulable?: boolean;
  /** Extension: how the controller reaches the node. `ssh` (default), `local` (this machine) or `sim` (simulated, benchmarks only). */
  transport?: 'ssh' | 'local' | 'sim';
  /** Extension: how the node is powered off when it is lost (high availability, drivers/fencing). */
  fencing?: FencingSpec;
}
/** A fencing agent and its settings; each agent reads only its own fields (drivers/fencing). */
export interface FencingSpec {
  agent: 'testbed' | 'ipmi';
  /** testbed: the testbed directory (its testbed.json); the node is the PhysicalNode's name. */
  testbedDir?: string;
  /** ipmi: the BMC's address. */
  host?: string;
  /** ipmi: the BMC user. */
  user?: string;
  /** ipmi: path (on the manager's machine) of a file holding the BMC password; never the password. */
  passwordFile?: string;
}
export interface PhysicalNodeStatus {
  conditions?: Condition[];
  allocated?: { cores: number; memoryMiB: number; vms: number };
  hypervisorVersion?: string;
  observedGeneration?: number;
  /** Real resources the last probe saw. */
  observed?: { cores?: number; memoryMiB?: number };
  /** The SAN block device (spec.sanDevice) as the last probe found it. */
  san?: { device: string; sizeBytes: number };
}
export type PhysicalNode = ApiObject<PhysicalNodeSpec, PhysicalNodeStatus> & { kind: 'PhysicalNode' };

// ---- OSTemplate ---------------------------------------------------------------------------

export interface OSTemplateSpec {
  image: { path?: string; format?: 'qcow2' | 'raw'; tarball?: string };
  boot?: { kernel?: string; initrd?: string; cmdline?: string };
  revision: number;
  /** The image runs the guest agent (hack/guest/vc-agent): GuestReady comes from it, else from the console's READY line. */
  guestAgent?: boolean;
}
export interface OSTemplateStatus {
  conditions?: Condition[];
  observedGeneration?: number;
}
export type OSTemplate = ApiObject<OSTemplateSpec, OSTemplateStatus> & { kind: 'OSTemplate' };

// ---- VirtualCluster -----------------------------------------------------------------------

export type PlacementStrategy = 'Block' | 'Cyclic';
export type PlacementMode = 'Strict' | 'Lazy';
export type VCState = 'Running' | 'Suspended' | 'Stopped';

export interface VirtualClusterSpec {
  nodes: number;
  template: string;
  /** bootTimeout: a duration (90s, 5m); 5m when omitted. */
  node: { vcpus: number; memoryMiB: number; diskGiB: number; swapMiB: number; bootTimeout?: string };
  network?: { subnet?: string };
  sharedStorage?: { sizeGiB: number; filesystem: 'nfs' | 'ocfs2' | 'none' };
  placement: { strategy: PlacementStrategy; mode: PlacementMode };
  state: VCState;
  firstBoot?: { script?: string };
  /** Extension: the storage driver for this VC's volumes. */
  storageDriver?: 'qcow2' | 'btrfs' | 'lvm' | 'evms';
  /** Extension: what happens to a VM whose physical node is lost and fenced: `restart` (default) elsewhere, or `none`. */
  highAvailability?: 'restart' | 'none';
  /**
   * The one hypervisor kind the VMs run on; absent: the kind of the nodes they are bound to, or
   * for a VC not placed yet the first kind whose nodes take all of it.
   */
  hypervisor?: 'qemu' | 'xen';
}
export type VCPhase =
  | 'Pending' | 'Provisioning' | 'Running' | 'Suspended' | 'Stopped' | 'Failed' | 'Terminating';
export interface VirtualClusterStatus {
  phase?: VCPhase;
  observedGeneration?: number;
  conditions?: Condition[];
  nodes?: { name: string; physicalNode?: string; ip?: string; phase?: VNPhase }[];
  subnet?: string;
  /** Written by placement: the placement the current binding was made with (differs from
   * spec.placement while a change waits for the next resume). */
  placement?: { strategy: PlacementStrategy; mode: PlacementMode };
}
export type VirtualCluster = ApiObject<VirtualClusterSpec, VirtualClusterStatus> & {
  kind: 'VirtualCluster';
};

// ---- VirtualNode --------------------------------------------------------------------------

export type VNPhase =
  | 'Pending' | 'Scheduled' | 'Starting' | 'Running' | 'Migrating' | 'Suspending'
  | 'Suspended' | 'Stopped' | 'Failed';
export interface VirtualNodeSpec {
  cluster: string;
  index: number;
  /** Written by placement only. */
  physicalNode?: string;
  vcpus: number;
  memoryMiB: number;
}
export interface VirtualNodeStatus {
  phase?: VNPhase;
  ip?: string;
  /** Where the domain actually runs now (runtime's view). */
  host?: string;
  conditions?: Condition[];
  observedGeneration?: number;
  message?: string;
  restarts?: number;
  /** When the domain last died unexpectedly (restart backoff counts from here). */
  lastFailureTime?: string;
  /** The template revision of the node's disk when its memory was saved (suspend): a disk reset
   * since makes the saved state unusable. */
  savedDiskRevision?: string;
  /** The size the VM runs with now (a resize reaches it at its next start); placement counts the larger of this and spec. */
  runningSize?: { vcpus: number; memoryMiB: number };
  /** The size the VM ran with when its memory was saved; a resize since discards the saved state. */
  savedSize?: { vcpus: number; memoryMiB: number };
  /** What GuestReady said when the VM's memory was saved, if the guest had reported in: a restore
   * continues that boot (no new READY line, no new boot), so the guest is ready again at once. */
  savedGuestReady?: { reason: string; message: string };
  /** When the runtime last started or resumed the domain (the boot timeout counts from here). */
  bootTime?: string;
  /** The restart request (annotation virtualinux.org/restart) last carried out. */
  restartedFor?: string;
}
export type VirtualNode = ApiObject<VirtualNodeSpec, VirtualNodeStatus> & { kind: 'VirtualNode' };

// ---- Volume -------------------------------------------------------------------------------

export type VolumeRole = 'original' | 'snapshot' | 'swap' | 'shared' | 'config';
export type StorageDriverName = 'qcow2' | 'btrfs' | 'lvm' | 'evms';
export interface VolumeSpec {
  role: VolumeRole;
  cluster: string;
  sizeGiB: number;
  driver: StorageDriverName;
  /** The name of the Volume a snapshot is taken of. */
  source?: string;
  /** For per-node volumes: the VirtualNode it belongs to. */
  virtualNode?: string;
}
export interface VolumeStatus {
  phase?: 'Pending' | 'Ready' | 'Failed';
  path?: string;
  bytesUsed?: number;
  message?: string;
  /** The OSTemplate revision an original or snapshot was made from. */
  templateRevision?: number;
  /** The format the hypervisor opens it in, as the storage driver made it (a shared directory: dir). */
  format?: 'qcow2' | 'raw' | 'dir';
  /** A config volume: the revision of the first-boot configuration written on it. */
  configRevision?: string;
  conditions?: Condition[];
  observedGeneration?: number;
}
export type Volume = ApiObject<VolumeSpec, VolumeStatus> & { kind: 'Volume' };

// ---- Migration ----------------------------------------------------------------------------

export interface MigrationSpec {
  virtualNode: string;
  targetNode: string;
}
export interface MigrationStatus {
  phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
  downtimeMs?: number;
  totalMs?: number;
  sourceNode?: string;
  message?: string;
  startTime?: string;
  completionTime?: string;
  /** The hypervisor's latest figures while the transfer runs (kept as the last sample afterwards). */
  progress?: MigrationProgressStatus;
  conditions?: Condition[];
  observedGeneration?: number;
}
/** One sample of a running live migration (QEMU's query-migrate); remaining can grow while the guest dirties memory. */
export interface MigrationProgressStatus {
  transferredBytes: number;
  remainingBytes: number;
  totalBytes: number;
  dirtyBytesPerSec: number;
  throughputBytesPerSec: number;
  /** Completed passes over guest memory. */
  passes: number;
  /** When the hypervisor reported these figures. */
  sampleTime: string;
}
export type Migration = ApiObject<MigrationSpec, MigrationStatus> & { kind: 'Migration' };

// ---- Event --------------------------------------------------------------------------------

export interface EventSpec {
  involvedObject: { kind: string; name: string; namespace?: string; uid?: string };
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
  source?: string;
}
export type EventObject = ApiObject<EventSpec, never> & { kind: 'Event' };
