// The runtime's decision for one VirtualNode, as a pure function of what is observed. The
// runtime controller gathers the inputs (the VirtualNode, its VC's desired state, whether its
// disks and network are ready, where its domain is seen on the hypervisors, whether a saved state
// exists on the storage root, an active Migration) and performs the one action returned.
//
// Invariants the plan keeps:
// - A VM never runs on two hosts at once: a second copy is destroyed, keeping the copy on the host
//   the VirtualNode is bound to (an incoming-migration target is left to the Migration's owner).
// - A VM is never started without its disks (storageReady) and its network rules (networkReady):
//   it fails closed.
// - While a Migration of this VirtualNode is active, the plan does nothing but report Migrating:
//   the migration state machine alone moves the domain.
// - Resuming restores the saved state on the host the node is bound to now, which placement may
//   have changed while the VC was suspended (the paper's remap).

import type { VCState, VNPhase } from '../../api/types.js';

export type DomainState = 'running' | 'paused' | 'incoming' | 'shutoff';

export interface ObservedDomain {
  host: string;
  state: DomainState;
  /** The size it runs with (a resize reaches a running VM only at its next start). */
  vcpus?: number;
  memoryMiB?: number;
}

export interface RuntimeInput {
  /** The host placement bound the node to; undefined while unplaced. */
  boundHost: string | undefined;
  desired: VCState;
  /** Being deleted (the VirtualNode or its VC): the domain goes and nothing is started. */
  deleting: boolean;
  storageReady: boolean;
  networkReady: boolean;
  /** Every place the domain `<namespace>.<virtualnode>` was seen. */
  domains: readonly ObservedDomain[];
  /** A suspend image for this node exists on the storage root. */
  savedState: boolean;
  migrationActive: boolean;
  /** A migration of this node ended moments ago: its two hosts may still be settling, so neither
   * copy is taken for a stray one yet. */
  migrationSettling?: boolean;
  /** The phase last reported, to tell an unexpected death from a first start. */
  lastPhase: VNPhase | undefined;
  /** Restart backoff: when the last unexpected failure was recorded, and how many so far. */
  restarts: number;
  lastFailureMs: number | undefined;
  nowMs: number;
  /** A restart was asked for (annotation virtualinux.org/restart) and not yet carried out. */
  restartRequested?: boolean;
}

export type RuntimeAction =
  | { type: 'none' }
  | { type: 'start'; host: string }
  /** Power the guest off (destroyed after the shutdown timeout) and start it afresh on the same host, disks kept. */
  | { type: 'restart'; host: string }
  | { type: 'restore'; host: string }
  | { type: 'suspend'; host: string }
  | { type: 'shutdown'; host: string }
  | { type: 'destroy'; host: string; reason: string }
  | { type: 'discardSavedState' };

export interface RuntimeDecision {
  action: RuntimeAction;
  phase: VNPhase;
  /** Why, for the status message and the Event. */
  message: string;
  /** The domain died without being asked to: report Failed and count a restart. */
  unexpectedDeath?: boolean;
  /** Come back after this long (waiting for backoff or for an operation in flight). */
  requeueAfterMs?: number;
}

/** Set a VirtualNode's annotation to a new value (vcctl restart: a timestamp) to have its VM rebooted once. */
export const RESTART_ANNOTATION = 'virtualinux.org/restart';

export const RESTART_BACKOFF_BASE_MS = 2_000;
export const RESTART_BACKOFF_MAX_MS = 5 * 60_000;

/** Exponential restart backoff: 2 s, 4 s, 8 s ... capped at 5 minutes. */
export function restartDelayMs(restarts: number): number {
  return Math.min(RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_BASE_MS * 2 ** Math.max(0, restarts - 1));
}

const LIVE: ReadonlySet<DomainState> = new Set(['running', 'paused']);

export function planRuntime(i: RuntimeInput): RuntimeDecision {
  const live = i.domains.filter((d) => LIVE.has(d.state));
  const onBound = live.find((d) => d.host === i.boundHost);

  if (i.migrationActive) {
    return { action: { type: 'none' }, phase: 'Migrating', message: 'a live migration is in progress' };
  }

  const current0 = live.find((d) => d.host === i.boundHost) ?? live[0];
  if (i.migrationSettling && (live.length > 1 || i.domains.some((d) => d.state === 'incoming'))) {
    return { action: { type: 'none' }, phase: 'Running', message: `settling after a migration: running on ${current0?.host ?? 'the target'}`, requeueAfterMs: 2_000 };
  }

  // Never two copies: keep the bound host's copy (or, unbound, the first seen), destroy the rest.
  if (live.length > 1) {
    const keep = onBound ?? live[0]!;
    const extra = live.find((d) => d !== keep)!;
    return {
      action: { type: 'destroy', host: extra.host, reason: `duplicate of the copy on ${keep.host}` },
      phase: 'Running',
      message: `running on ${live.map((d) => d.host).join(' and ')}; removing the copy on ${extra.host}`,
      requeueAfterMs: 0,
    };
  }
  const current = live[0];
  // A leftover incoming-migration target with no migration active is garbage.
  const strayIncoming = i.domains.find((d) => d.state === 'incoming');
  if (strayIncoming) {
    return {
      action: { type: 'destroy', host: strayIncoming.host, reason: 'incoming migration target without a migration' },
      phase: current ? 'Running' : (i.lastPhase ?? 'Pending'),
      message: `removing a stale migration target on ${strayIncoming.host}`,
      requeueAfterMs: 0,
    };
  }

  if (i.deleting) {
    if (current) {
      return { action: { type: 'destroy', host: current.host, reason: 'VirtualNode deleted' }, phase: 'Stopped', message: 'deleting', requeueAfterMs: 0 };
    }
    if (i.savedState) return { action: { type: 'discardSavedState' }, phase: 'Stopped', message: 'deleting the saved state' };
    return { action: { type: 'none' }, phase: 'Stopped', message: 'deleted' };
  }

  switch (i.desired) {
    case 'Suspended':
      if (current) return { action: { type: 'suspend', host: current.host }, phase: 'Suspending', message: `saving to disk from ${current.host}` };
      return { action: { type: 'none' }, phase: i.savedState ? 'Suspended' : 'Stopped', message: i.savedState ? 'saved on the storage root' : 'not running and nothing saved' };
    case 'Stopped':
      if (current) return { action: { type: 'shutdown', host: current.host }, phase: 'Stopped', message: `shutting down on ${current.host}`, requeueAfterMs: 0 };
      if (i.savedState) return { action: { type: 'discardSavedState' }, phase: 'Stopped', message: 'stopped: the saved state is discarded' };
      return { action: { type: 'none' }, phase: 'Stopped', message: 'stopped' };
    case 'Running':
      break;
  }

  if (current) {
    if (i.boundHost !== undefined && current.host !== i.boundHost) {
      // Only a Migration moves a running VM; the binding will follow or be restored by it.
      return { action: { type: 'none' }, phase: 'Running', message: `running on ${current.host}, bound to ${i.boundHost}: waiting for a migration` };
    }
    if (i.restartRequested) {
      return { action: { type: 'restart', host: current.host }, phase: 'Running', message: `restarted on ${current.host}` };
    }
    return { action: { type: 'none' }, phase: 'Running', message: `running on ${current.host}` };
  }

  if (i.boundHost === undefined) return { action: { type: 'none' }, phase: 'Pending', message: 'waiting for placement' };
  if (!i.storageReady) return { action: { type: 'none' }, phase: 'Scheduled', message: 'waiting for its volumes' };
  if (!i.networkReady) return { action: { type: 'none' }, phase: 'Scheduled', message: 'waiting for its network rules (fail closed)' };

  const wasRunning = i.lastPhase === 'Running' || i.lastPhase === 'Starting' || i.lastPhase === 'Migrating';
  if (wasRunning && !i.savedState) {
    // It was running and nobody asked it to stop: it died.
    const delay = restartDelayMs(i.restarts + 1);
    return {
      action: { type: 'none' },
      phase: 'Failed',
      message: `the domain on ${i.boundHost} died unexpectedly; restarting in ${Math.round(delay / 1000)} s`,
      unexpectedDeath: true,
      requeueAfterMs: delay,
    };
  }
  if (i.lastPhase === 'Failed' && i.lastFailureMs !== undefined) {
    const wait = i.lastFailureMs + restartDelayMs(i.restarts) - i.nowMs;
    if (wait > 0) return { action: { type: 'none' }, phase: 'Failed', message: `restart backoff: ${Math.ceil(wait / 1000)} s left`, requeueAfterMs: wait };
  }
  if (i.savedState) return { action: { type: 'restore', host: i.boundHost }, phase: 'Starting', message: `resuming from disk on ${i.boundHost}` };
  return { action: { type: 'start', host: i.boundHost }, phase: 'Starting', message: `starting on ${i.boundHost}` };
}
