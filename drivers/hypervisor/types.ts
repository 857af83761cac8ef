// The hypervisor driver contract: how the runtime controller runs the VMs ("domains") of virtual
// nodes on one physical node. One driver instance is bound to one node (its Transport); migration
// takes the target node's driver of the same kind.
//
// Names: a domain is named `<namespace>.<virtualnode>` (API.md). The name reaches the hypervisor
// only as an argv element, and the driver derives every per-domain file (pid, sockets, console,
// configuration) from it under the node's run directory, so a retry finds its own earlier work.
//
// Idempotency and failure semantics (every method):
// - create(spec) of a domain that is already running (or paused) on this node is a no-op returning
//   its info; of a domain that exists but is shut off, it starts it again (fresh console log).
//   A failed create leaves no process behind (its files stay for the console log; destroy removes them).
// - destroy of an absent domain succeeds. destroy ends the process whatever its state and removes
//   the domain's run directory (console log included). Disks are never touched by any method.
// - shutdown asks the guest to power off (ACPI power button) and destroys it after the timeout;
//   shutdown of an absent domain succeeds. It reports whether the guest went down by itself.
// - suspend writes the whole VM state to a file on the storage root and ends the domain; the file
//   appears under its final name only when complete (a failed suspend leaves the domain running and
//   no file). resume(spec, file) starts the domain from such a file on this node, which may be
//   another node than the one that suspended it as long as the disks and the file are reachable at
//   the same paths; on success the state file is deleted (resuming the same state twice would fork
//   the root disk), on failure the file is kept and no process is left.
// - migrate(name, target) moves a running domain live to the target node. On success the domain
//   runs only on the target and its files are gone from the source. On failure, timeout or cancel
//   the domain keeps running on the source and nothing is left on the target (no process, no files);
//   the error says which (MigrationCancelledError for a cancel).
// - prepareMigration(name, target, opts) (optional; QEMU has it, Xen does not) is migrate() cut in
//   two: the preparation (the target started and waiting for the state, the source's monitor
//   readied; the running domain is not touched) and run() (the transfer and switch-over, with the
//   failure semantics of migrate). The migration controller prepares while the Migration is still
//   Pending and records it Running (its clock) just before run(). An aborted or failed preparation
//   leaves nothing on the target; a manager that dies after preparing leaves an `incoming` domain
//   on the target that the next preparation of the same domain replaces (and the orphan
//   controller removes once no Migration wants it). migrate(name, target, opts) is equivalent to
//   prepareMigration followed by run(), its endToEndMs then counting the preparation too.
// - cancelMigration(name) stops an outgoing migration of that domain; false when none was running.
// - Guests that mounted a virtio-9p share cannot be migrated or suspended by QEMU ("Migration is
//   disabled when VirtFS export path ... is mounted"): those calls fail and leave the domain running.

import type { Transport } from '../transport/types.js';
import { NamedError } from '../../api/errors.js';

/** `sim`: simulated VMs on a simulated host (sim-driver.ts; benchmarks only, not for production). */
export type HypervisorKind = 'qemu' | 'xen' | 'sim';

export interface DiskSpec {
  /** File or block device on the node (on the storage root for the snapshot, swap and config). */
  path: string;
  format: 'qcow2' | 'raw';
  readOnly?: boolean;
}

export interface DomainNetwork {
  /** Host-side tap interface (created by the network layer, or by QEMU when absent). */
  tap: string;
  /** Guest MAC, e.g. 52:54:00:xx:xx:xx; deterministic per virtual node. */
  mac: string;
  /** The guest's address (informational here; routing is the network layer's job). */
  ip?: string;
  /** Xen: the vif hotplug script; default vif-route (routed networking). */
  script?: string;
}

export interface DomainSpec {
  /** `<namespace>.<virtualnode>`. */
  name: string;
  vcpus: number;
  memoryMiB: number;
  /** Direct kernel boot; absent: the firmware boots the boot loader installed on the root disk. */
  boot?: { kernel: string; initrd?: string; cmdline: string };
  /** In guest order: vda = root (the node's snapshot), vdb = swap, vdc = config (ADR 0002). */
  disks: { root: DiskSpec; swap?: DiskSpec; config?: DiskSpec };
  /** Directory exported to the guest as virtio-9p tag `vcshared` (the VC's shared storage). */
  sharedDir?: string;
  /** No network device when absent. */
  network?: DomainNetwork;
  /** Console log file on the node; default: `console.log` in the domain's run directory. */
  consoleLog?: string;
}

/** running: executing; paused: stopped by us or by an operation in progress; shutoff: the process ended (files remain). */
export type DomainState = 'running' | 'paused' | 'migrating' | 'incoming' | 'shutoff';

export interface DomainInfo {
  name: string;
  state: DomainState;
  /** The hypervisor's own state word (QEMU runstate, xl state letters). */
  detail?: string;
  /** Process id on the node (QEMU) or domain id (Xen) while it exists. */
  pid?: number;
  vcpus?: number;
  memoryMiB?: number;
}

export interface ShutdownOptions {
  /** How long the guest gets to power off after the ACPI request; default 30 000 ms. */
  timeoutMs?: number;
}

export interface ShutdownResult {
  /** True when the guest powered off by itself within the timeout. */
  clean: boolean;
}

export interface MigrateOptions {
  /** Maximum downtime QEMU aims for, ms; default 300. */
  downtimeLimitMs?: number;
  /** Bandwidth cap, bytes per second; default unlimited (QEMU's default is 32 MiB/s: we lift it). */
  maxBandwidthBytesPerSec?: number;
  /** Cancel and fail after this long; default 120 000 ms. */
  timeoutMs?: number;
  /** Called with progress figures while the migration runs. */
  onProgress?: (p: MigrationProgress) => void;
  /**
   * Only for drivers with `pausedSwitchover` (others refuse a migration that sets it, before
   * anything transfers): called once at the switchover, when the domain has stopped on the source
   * for good and waits, complete and paused, on the target; the driver lets it run there only
   * after this resolves (the time counts as downtime). If it throws, the domain is left paused on
   * the target (the source's copy is gone) and the migration fails with the error.
   */
  beforeResume?: () => Promise<void>;
}

/**
 * One sample of an outgoing migration as the hypervisor reports it (QEMU: query-migrate's `ram`).
 * Remaining bytes can grow between samples while the guest dirties memory faster than it is sent:
 * show these figures, not a percentage derived from them.
 */
export interface MigrationProgress {
  status: string;
  transferredBytes: number;
  remainingBytes: number;
  totalBytes: number;
  /** Guest memory being dirtied, bytes per second (QEMU: dirty-pages-rate × page-size; 0 before the first pass ends). */
  dirtyBytesPerSec?: number;
  /** The transfer's throughput, bytes per second (QEMU: mbps). */
  throughputBytesPerSec?: number;
  /** Completed passes over guest memory (QEMU: dirty-sync-count). */
  passes?: number;
}

export interface MigrationResult {
  /** The guest's downtime as the hypervisor reports it, ms. */
  downtimeMs: number;
  /** The migration's total time as the hypervisor reports it, ms. */
  totalMs: number;
  /** Our end to end time: from the call until the domain runs only on the target, ms. */
  endToEndMs: number;
  /** Bytes the hypervisor reports sent; 0 when it reports none (Xen's xl), and then not shown. */
  transferredBytes: number;
  /** Where the end to end time went, ms (drivers that can tell; their sum is endToEndMs). */
  phasesMs?: MigrationPhases;
  /**
   * PreparedMigration.run() only: how long prepareMigration took before run() was called, ms. It
   * is not part of endToEndMs (nor of phasesMs.prepare), which count from run().
   */
  preparedMs?: number;
}

/**
 * A live migration whose target is ready (HypervisorDriver.prepareMigration). Exactly one of
 * run() and abort() may be called, once.
 */
export interface PreparedMigration {
  /** How long the preparation took, ms. */
  readonly preparedMs: number;
  /**
   * Transfers the domain and switches over, as migrate() does (same result and failure semantics:
   * on failure, timeout or cancel the domain runs on the source and nothing is left on the target).
   * endToEndMs counts from this call.
   */
  run(): Promise<MigrationResult>;
  /** Gives the migration up before it started: nothing is left on the target, the source runs on untouched. */
  abort(): Promise<void>;
}

/** The stages of one live migration as the driver lived them, each in ms. */
export interface MigrationPhases {
  /**
   * From the call until the source was told to migrate: the target started and listening (for
   * PreparedMigration.run, only the source's command: the target was started beforehand).
   */
  prepare: number;
  /** Until the source reported completion (the hypervisor's own total time lies within this). */
  transfer: number;
  /** Until the target ran the domain (the source quits and is cleaned up meanwhile). */
  switchover: number;
  /** Then until the source's process was gone and its files removed (0 when that was done first). */
  cleanup: number;
}

export interface SuspendResult {
  file: string;
  bytes: number;
  /** Time to write the state, ms. */
  durationMs: number;
}

export interface ConsoleReadOptions {
  /** Byte offset to read from (a previous result's `nextOffset`); default 0. */
  fromOffset?: number;
}

export interface ConsoleChunk {
  text: string;
  nextOffset: number;
}

/** The guest agent's answer to a ping (hack/guest/vc-agent). */
export interface GuestAgentReply {
  /** The node name and address the guest configured from its first-boot disk. */
  node: string;
  ip: string;
  /** Seconds since the guest booted, as the guest counts them. */
  uptimeSeconds: number;
}

/** An interactive attachment to a domain's serial console (attachConsole). */
export interface ConsoleSession {
  /** Bytes typed into the guest's serial port. */
  input: NodeJS.WritableStream;
  /** Bytes the guest prints from the moment of attaching. */
  output: NodeJS.ReadableStream;
  /** Resolves when the attachment ends: detached, taken over (--force), or the domain ended. */
  done: Promise<void>;
  /** Detaches (the guest keeps running; the console is free for the next attach). */
  close(): void;
}

export interface AttachConsoleOptions {
  /** Take the console from a session attached elsewhere (it is ended) instead of refusing. */
  force?: boolean;
}

export interface HypervisorDriver {
  readonly kind: HypervisorKind;
  /** The node this driver acts on (its Transport's host label). */
  readonly node: string;
  readonly transport: Transport;

  /** Every domain this driver manages on the node, including shut-off ones whose files remain. */
  list(): Promise<DomainInfo[]>;
  /** One domain, or undefined when it does not exist on this node. */
  get(name: string): Promise<DomainInfo | undefined>;
  /** Creates and starts; see the idempotency rules above. */
  create(spec: DomainSpec): Promise<DomainInfo>;
  shutdown(name: string, opts?: ShutdownOptions): Promise<ShutdownResult>;
  destroy(name: string): Promise<void>;
  suspend(name: string, file: string): Promise<SuspendResult>;
  resume(spec: DomainSpec, file: string): Promise<DomainInfo>;
  migrate(name: string, target: HypervisorDriver, opts?: MigrateOptions): Promise<MigrationResult>;
  /**
   * Optional: prepares a live migration of `name` to `target` (see the rules above) without
   * touching the running domain; `opts` are those of the migration (its timeout counts from run()).
   * Fails, leaving nothing on the target, when migrate() would refuse, when the domain is already
   * migrating, or when a domain of that name runs (not merely waits as an incoming one) on the target.
   */
  prepareMigration?(name: string, target: HypervisorDriver, opts?: MigrateOptions): Promise<PreparedMigration>;
  /**
   * True when migrate() (and PreparedMigration.run) honour MigrateOptions.beforeResume: the domain
   * waits paused on the target at the switchover (Xen: `xl migrate -p`, then `xl unpause`).
   */
  readonly pausedSwitchover?: boolean;
  /**
   * Optional (Xen): settles a migration of `name` to `target` that the hypervisor's own tool left
   * stranded, with nothing finishing it: the source's copy listed paused with a STRANDED_DETAILS
   * detail. Exactly one copy runs afterwards: the target's complete copy (renamed and resumed,
   * `beforeResume` first), else the source's copy resumed (memory kept) or started again from its
   * disks (memory lost); the result says which. Undefined when there is nothing to settle here.
   */
  settleMigration?(name: string, target: HypervisorDriver, opts?: Pick<MigrateOptions, 'beforeResume'>): Promise<MigrationSettlement | undefined>;
  cancelMigration(name: string): Promise<boolean>;
  /** The guest's console output (ttyS0 / hvc0) from an offset; empty when the domain does not exist. */
  readConsole(name: string, opts?: ConsoleReadOptions): Promise<ConsoleChunk>;
  /**
   * Asks the guest agent inside the domain whether the guest is up: undefined when it does not
   * answer within timeoutMs (still booting, no agent in this image, or the domain is absent).
   * Read-only; drivers without a guest channel leave it out (the runtime reads the console instead).
   */
  pingGuestAgent?(name: string, timeoutMs: number): Promise<GuestAgentReply | undefined>;
  /**
   * Attaches to the domain's serial console. One attachment per domain at a time: a second one
   * fails with ConsoleBusyError unless `force`, which ends the first. Detaching leaves the domain
   * running. Fails when the domain does not run on this node.
   */
  attachConsole?(name: string, opts?: AttachConsoleOptions): Promise<ConsoleSession>;
}

/**
 * DomainInfo.detail of a source's copy (state paused) that a migration left stranded for
 * settleMigration: Xen's `<name>--migratedaway` that no `xl migrate` sends any more (past xl's point
 * of no return, suspended), and a copy an `xl migrate` suspended and died before renaming.
 */
export const STRANDED_DETAILS = ['migratedaway', 'migrating-suspended'] as const;

/** What settleMigration did with a stranded migration. */
export interface MigrationSettlement {
  /** The node the VM runs on now (undefined: nowhere, see message). */
  runsOn: string | undefined;
  /** It runs on the target: the migration completed. */
  movedToTarget: boolean;
  /** Its memory state survived (false: started again from its disks). */
  memoryKept: boolean;
  /** What happened, for the Migration's status. */
  message: string;
}

export class HypervisorError extends NamedError {}
export class MigrationFailedError extends HypervisorError {}
/** The console is attached elsewhere (attachConsole without force). */
export class ConsoleBusyError extends HypervisorError {}
export class MigrationCancelledError extends MigrationFailedError {}
/**
 * A migration with MigrateOptions.beforeResume whose hook (or the resume after it) failed: unlike
 * MigrationFailedError, the domain is NOT on the source any more but paused on the target.
 */
export class SwitchoverError extends HypervisorError {}
/**
 * A migration that failed and was then settled (settleMigration): the VM runs where `settlement`
 * says (its source, resumed or started again from its disks, or nowhere), not necessarily as it was.
 */
export class MigrationSettledError extends MigrationFailedError {
  constructor(message: string, readonly settlement: MigrationSettlement) {
    super(message);
  }
}
/**
 * A migration left past (or before) its point of no return whose settling failed part way: where
 * the VM runs is not known until it is settled again (settleMigration, from the migration plan's
 * `settle`). Not a MigrationFailedError: the VM may not be on its source.
 */
export class MigrationStrandedError extends HypervisorError {}


/**
 * Rejects names that cannot be a single visible path component or carry control characters. Everything
 * else (commas, spaces, quotes) is allowed: names reach tools only as argv elements.
 */
export function validateDomainName(name: string): void {
  if (!name || name.startsWith('.') || name.length > 200 || /[/\x00-\x1f\x7f]/.test(name)) {
    throw new HypervisorError(
      `invalid domain name ${JSON.stringify(name)}: use <namespace>.<virtualnode> (no leading ".", no "/", no control characters, at most 200 bytes)`,
    );
  }
}

export interface DomainChange {
  name: string;
  /** undefined: the domain disappeared. */
  info: DomainInfo | undefined;
}

/**
 * Observes a node's domains by polling `list()`: calls onChange for every domain that appeared,
 * disappeared or changed state. Returns a function that stops the observation. List errors are
 * passed to onError and the observation goes on.
 */
export function observeDomains(
  driver: Pick<HypervisorDriver, 'list'>,
  onChange: (c: DomainChange) => void,
  opts: { intervalMs?: number; onError?: (e: unknown) => void } = {},
): () => void {
  let known = new Map<string, DomainInfo>();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = async (): Promise<void> => {
    try {
      const now = new Map((await driver.list()).map((d) => [d.name, d] as const));
      if (stopped) return;
      for (const [name, info] of now) {
        const old = known.get(name);
        if (!old || old.state !== info.state) onChange({ name, info });
      }
      for (const name of known.keys()) if (!now.has(name)) onChange({ name, info: undefined });
      known = now;
    } catch (e) {
      opts.onError?.(e);
    }
    if (!stopped) timer = setTimeout(() => void tick(), opts.intervalMs ?? 2000);
  };
  void tick();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
