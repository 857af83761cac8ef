// The live-migration state machine, as a pure function of the stored Migration and what is
// observed on the two hosts. It is stored (Migration.status) so a manager that crashes in the
// middle of a migration finds, on its next reconcile, either a migration QEMU is still carrying
// out (wait), one that completed (finish the switch-over), or one that failed (clean the target,
// keep the source running). The guarantees:
// - the VM never runs on both hosts: the target only runs once the source has stopped at the end
//   of the transfer (QEMU's own switch-over), and finishing quits the paused source;
// - the VM never runs on neither after a failure: aborting cancels on the source, destroys the
//   target, and resumes the source if it was left paused; a migration stranded past its point of
//   no return (Xen) is settled by the source's driver: the target's complete copy runs, else the
//   source's copy is resumed (or started again from its disks) and the Migration says which;
// - a migration past its timeout is aborted;
// - at most `maxPerNode` migrations run at once on any node (as source or target).

/**
 * `stranded`: the source's copy stopped past the hypervisor's point of no return with nothing left
 * finishing the migration (Xen: `<name>--migratedaway`, suspended, its `xl migrate` gone).
 */
export type SourceMigrationState = 'none' | 'active' | 'completed' | 'failed' | 'cancelled' | 'stranded';
export type HostDomainState = 'absent' | 'running' | 'paused' | 'incoming';

export interface MigrationInput {
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | undefined;
  /** Where the VM runs now (Pending) or ran when the migration started (Running: status.sourceNode). */
  source: string | undefined;
  target: string;
  /** undefined when the target may take the VM; otherwise why not. */
  targetRefusal: string | undefined;
  /** The VirtualNode exists, is Running, and is not being deleted. */
  vmMigratable: boolean;
  /** Why not, when !vmMigratable. */
  vmRefusal?: string;
  sourceDomain: HostDomainState;
  targetDomain: HostDomainState;
  /** What QEMU on the source reports of the outgoing migration. */
  sourceMigration: SourceMigrationState;
  /** Other migrations now Running that involve the source or the target. */
  busyOnNodes: number;
  maxPerNode: number;
  startedMs: number | undefined;
  nowMs: number;
  timeoutMs: number;
}

export type MigrationAction =
  | { type: 'none' }
  /** Record Running with sourceNode and startTime, then start the target and the transfer. */
  | { type: 'begin'; source: string; target: string }
  /** Quit the paused source, move the binding to the target, record Succeeded with QEMU's figures. */
  | { type: 'finish'; source: string; target: string }
  /** Cancel on the source, destroy the target, resume the source; record Failed. */
  | { type: 'abort'; source: string; target: string; why: string }
  /**
   * The source's driver settles a stranded migration: the target's complete copy runs (Succeeded),
   * or the source's copy is resumed or started again there (Failed, saying which).
   */
  | { type: 'settle'; source: string; target: string }
  /** Record Failed without touching any host. */
  | { type: 'fail'; why: string };

export interface MigrationDecision {
  action: MigrationAction;
  message: string;
  requeueAfterMs?: number;
}

export const MIGRATION_POLL_MS = 500;

export function planMigration(i: MigrationInput): MigrationDecision {
  if (i.phase === 'Succeeded' || i.phase === 'Failed') return { action: { type: 'none' }, message: 'finished' };

  if (i.phase === undefined || i.phase === 'Pending') {
    if (!i.vmMigratable) return { action: { type: 'fail', why: i.vmRefusal ?? 'the VM is not running' }, message: i.vmRefusal ?? 'the VM is not running' };
    if (!i.source) return { action: { type: 'fail', why: 'the VM is not running on any node' }, message: 'not running' };
    if (i.source === i.target) return { action: { type: 'fail', why: `the VM already runs on ${i.target}` }, message: 'already there' };
    if (i.targetRefusal) return { action: { type: 'fail', why: `target ${i.target} refused: ${i.targetRefusal}` }, message: i.targetRefusal };
    if (i.busyOnNodes >= i.maxPerNode) {
      return { action: { type: 'none' }, message: `waiting: ${i.busyOnNodes} migrations already run on ${i.source} or ${i.target}`, requeueAfterMs: 2_000 };
    }
    return { action: { type: 'begin', source: i.source, target: i.target }, message: `migrating from ${i.source} to ${i.target}` };
  }

  // Running.
  const source = i.source!;
  // Past the point of no return with nothing finishing it: only the source's driver knows how to
  // tell whether the target's copy is complete, and to resume its own copy when it is not.
  if (i.sourceMigration === 'stranded') {
    return { action: { type: 'settle', source, target: i.target }, message: 'the transfer ended past its point of no return with nothing finishing it: settling' };
  }
  // A target runs only once the switchover is past (QEMU's and Xen's both start it then): the
  // source's copy, whatever it shows (Xen's <name>--migratedaway while xl finishes), is the old one.
  if (i.sourceMigration === 'completed' || i.targetDomain === 'running') {
    return { action: { type: 'finish', source, target: i.target }, message: 'transfer complete: switching over' };
  }
  if (i.sourceMigration === 'failed' || i.sourceMigration === 'cancelled') {
    return { action: { type: 'abort', source, target: i.target, why: `QEMU reports the migration ${i.sourceMigration}` }, message: 'migration failed' };
  }
  if (i.startedMs !== undefined && i.nowMs - i.startedMs > i.timeoutMs) {
    return { action: { type: 'abort', source, target: i.target, why: `timed out after ${Math.round(i.timeoutMs / 1000)} s` }, message: 'timed out' };
  }
  if (i.sourceMigration === 'active') {
    if (i.targetDomain === 'absent') {
      return { action: { type: 'abort', source, target: i.target, why: `the target on ${i.target} died during the transfer` }, message: 'target lost' };
    }
    return { action: { type: 'none' }, message: 'transferring', requeueAfterMs: MIGRATION_POLL_MS };
  }
  // Nothing in flight on the source (the manager died between recording Running and starting the
  // transfer, the source QEMU restarted, or an xl migrate that outlived its manager failed and xl
  // resumed the domain there): undo whatever half-start exists.
  return { action: { type: 'abort', source, target: i.target, why: 'the transfer was not running (an interrupted start, or it ended without completing while no manager watched)' }, message: 'interrupted' };
}
