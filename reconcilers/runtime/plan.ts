// The runtime's decision for one VirtualNode, as a pure function of what is observed. The
// runtime controller first observes everything the decision needs (the VirtualNode, its VC's
// desired state, whether placement has settled, whether its disks and network are ready, where its
// domain is seen on the hypervisors, whether a saved state exists on the storage root and still
// matches its disk and size, an active Migration), then plans ONCE, performs the one action
// returned, and writes the status runtimeStatus() derives from the decision and its outcome.
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

import { getCondition } from '../../api/conditions.js';
import type { VCState, VirtualNodeStatus, VNPhase } from '../../api/types.js';
import { GUEST_READY } from './guest-ready.js';

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
  /** Where that migration left the VM (its target when it succeeded, its source when it failed):
   * while both hosts still list a copy (xl's `<name>--migratedaway` on a Xen source, say), and
   * before placement moves the binding, that copy is the one the VM runs as. */
  settledOn?: string;
  /** The phase last reported, to tell an unexpected death from a first start. */
  lastPhase: VNPhase | undefined;
  /** Where it was last reported running (status.host): where a domain found gone died. */
  lastHost?: string;
  /** Restart backoff: when the last unexpected failure was recorded, and how many so far. */
  restarts: number;
  lastFailureMs: number | undefined;
  nowMs: number;
  /** A restart was asked for (annotation virtualinux.org/restart) and not yet carried out. */
  restartRequested?: boolean;
  /** Placement has settled on the VC's current spec (Placed=True at its generation). A start or
   * restore waits otherwise: a remap may be landing and the binding may still change. */
  placementSettled: boolean;
  /** The saved state no longer fits (the VM was resized, or its disk reset, while suspended):
   * it is discarded and the VM boots afresh. `why` goes in the status message, `event` in the
   * SavedStateDiscarded Event. */
  savedStateStale?: { why: string; event: string };
  /** The disk's reset to a newer template revision is still coming: a restore waits for it (the
   * status message). */
  diskResetPending?: string;
}

export type RuntimeAction =
  | { type: 'none' }
  /** With discardSavedState (the Event's message), the stale saved state is removed first. */
  | { type: 'start'; host: string; discardSavedState?: string }
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
  /** A wait that changes nothing the runtime recorded: only phase and message are written. */
  progressOnly?: boolean;
  /** Being deleted and no domain is left anywhere: say so, then remove the runtime finalizer. */
  finalize?: boolean;
}

/** Set a VirtualNode's annotation to a new value (vcctl restart: a timestamp) to have its VM rebooted once. */
export const RESTART_ANNOTATION = 'virtualinux.org/restart';

export const RESTART_BACKOFF_BASE_MS = 2_000;
/**
 * How often a VM waiting on another controller is looked at again without an event: placement
 * (its binding is its own spec), its volumes (Volume and the VC's StorageReady are watched) and a
 * settled placement (the VC's Placed condition is watched) each wake it when they move. A poll
 * every 1-5 s instead made the work grow as VMs x waiting time (hack/bench-scale: 3,000 VMs
 * waiting for placement were 600 reconciles a second, starving placement itself). At 15 s, 10,000
 * VMs waiting for their volumes and network asked ~670 reconciles a second (each a command or two
 * on its node) of a runtime that did ~8: its queue stayed at ~10,000 and a VM whose storage was
 * ready waited its turn ~20 min (hack/bench-scale 1000:10000, session 11). A backstop only.
 */
export const WATCHED_WAIT_MS = 60_000;
export const RESTART_BACKOFF_MAX_MS = 5 * 60_000;

/** Exponential restart backoff: 2 s, 4 s, 8 s ... capped at 5 minutes. */
export function restartDelayMs(restarts: number): number {
  return Math.min(RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_BASE_MS * 2 ** Math.max(0, restarts - 1));
}

const LIVE: ReadonlySet<DomainState> = new Set(['running', 'paused']);

export function planRuntime(i: RuntimeInput): RuntimeDecision {
  const d = decide(i);
  // Storage removes the volumes only once no VM of the VC is reported running: say so, then let go.
  if (i.deleting && d.action.type === 'none' && i.domains.length === 0) return { ...d, phase: 'Stopped', message: 'the domain is gone', finalize: true };
  return d;
}

/**
 * The copy the VM runs as, of those observed running or paused: while a migration settles the one
 * where it left the VM, else the one on the bound host, else the first seen. The status's host.
 */
export function currentDomain(i: Pick<RuntimeInput, 'domains' | 'boundHost' | 'migrationSettling' | 'settledOn'>): ObservedDomain | undefined {
  const live = i.domains.filter((d) => LIVE.has(d.state));
  return (i.migrationSettling ? live.find((d) => d.host === i.settledOn) : undefined) ?? live.find((d) => d.host === i.boundHost) ?? live[0];
}

function decide(i: RuntimeInput): RuntimeDecision {
  const live = i.domains.filter((d) => LIVE.has(d.state));
  const onBound = live.find((d) => d.host === i.boundHost);

  if (i.migrationActive) {
    return { action: { type: 'none' }, phase: 'Migrating', message: 'a live migration is in progress' };
  }

  const current0 = currentDomain(i);
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

  if (i.boundHost === undefined) return { action: { type: 'none' }, phase: 'Pending', message: 'waiting for placement', requeueAfterMs: WATCHED_WAIT_MS };
  if (!i.storageReady) return { action: { type: 'none' }, phase: 'Scheduled', message: 'waiting for its volumes', requeueAfterMs: WATCHED_WAIT_MS };

  const wasRunning = i.lastPhase === 'Running' || i.lastPhase === 'Starting' || i.lastPhase === 'Migrating';
  if (wasRunning && !i.savedState) {
    // It was running and nobody asked it to stop: it died.
    const delay = restartDelayMs(i.restarts + 1);
    // Where it ran, not the binding: right after a migration the binding is still the source's
    // until placement moves it (a guest that died on its target was said to have died on the source).
    const where = (i.migrationSettling ? i.settledOn : undefined) ?? i.lastHost ?? i.boundHost;
    return {
      action: { type: 'none' },
      phase: 'Failed',
      message: `the domain on ${where} died unexpectedly; restarting in ${Math.round(delay / 1000)} s`,
      unexpectedDeath: true,
      requeueAfterMs: delay,
    };
  }
  if (i.lastPhase === 'Failed' && i.lastFailureMs !== undefined) {
    const wait = i.lastFailureMs + restartDelayMs(i.restarts) - i.nowMs;
    if (wait > 0) return { action: { type: 'none' }, phase: 'Failed', message: `restart backoff: ${Math.ceil(wait / 1000)} s left`, requeueAfterMs: wait };
  }
  // About to boot: only on a settled placement, with its network rules in place (fail closed).
  if (!i.placementSettled) return { action: { type: 'none' }, phase: 'Scheduled', message: 'waiting for placement to settle', requeueAfterMs: WATCHED_WAIT_MS, progressOnly: true };
  // Woken when its VC's NetworkReady changes (the runtime watches it; network/subnets sets it once
  // every VM of the VC has its rules); polled every 5 s before, that was ~2,000 reconciles/s asked
  // for while 10,000 VMs waited (hack/bench-scale, session 11).
  if (!i.networkReady) return { action: { type: 'none' }, phase: 'Scheduled', message: 'waiting for its network rules (fail closed)', requeueAfterMs: WATCHED_WAIT_MS };
  if (i.savedState) {
    if (i.diskResetPending) return { action: { type: 'none' }, phase: i.lastPhase ?? 'Suspended', message: i.diskResetPending, requeueAfterMs: 1_000, progressOnly: true };
    if (i.savedStateStale) {
      return {
        action: { type: 'start', host: i.boundHost, discardSavedState: i.savedStateStale.event },
        phase: 'Starting',
        message: `starting afresh on ${i.boundHost}: ${i.savedStateStale.why}`,
      };
    }
    return { action: { type: 'restore', host: i.boundHost }, phase: 'Starting', message: `resuming from disk on ${i.boundHost}` };
  }
  return { action: { type: 'start', host: i.boundHost }, phase: 'Starting', message: `starting on ${i.boundHost}` };
}

/** The action boots the VM (start, restore, restart) and it runs on `host` afterwards. */
export function bootedBy(a: RuntimeAction, host: string | undefined): boolean {
  return (a.type === 'start' || a.type === 'restore' || a.type === 'restart') && !!host;
}

type Size = { vcpus: number; memoryMiB: number };

/** What the status write is made from, besides the decision. */
export interface StatusInput {
  /** Where the domain runs after the action (undefined: nowhere). */
  host: string | undefined;
  /** The domains observed before the action. */
  domains: readonly ObservedDomain[];
  previous: VirtualNodeStatus | undefined;
  /** The VirtualNode's size in its spec (what a boot gives it). */
  size: Size;
  /** The template revision of its disk now (recorded by a suspend). */
  diskRevision: string;
  /** The restart request (annotation value) pending, if any. */
  restartValue: string | undefined;
  nowIso: string;
}

/**
 * The VirtualNode status the runtime writes after carrying out `d` (fields set to undefined are
 * removed, fields absent are kept as stored). Phase follows what the action did: a start or
 * restore that left the domain on a host is Running, a suspend is Suspended.
 */
export function runtimeStatus(d: RuntimeDecision, s: StatusInput): VirtualNodeStatus {
  if (d.finalize) return { phase: 'Stopped', host: undefined, message: d.message };
  if (d.progressOnly) return { phase: d.phase, message: d.message };
  const a = d.action;
  const boots = a.type === 'start' || a.type === 'restore';
  let phase = d.phase;
  // Booted: Running, and said as the next pass would (planRuntime: `running on <host>`); the
  // decision's "starting on ..." written here was replaced by the next pass in a write of its own
  // (one of ~6 status writes per VM: hack/bench-scale, session 24). Why it booted afresh is in its Event.
  let message = d.message;
  if (boots && s.host) {
    phase = 'Running';
    message = `running on ${s.host}`;
  }
  if (a.type === 'suspend') phase = 'Suspended';
  const status: VirtualNodeStatus = { phase, host: s.host, message, restarts: s.previous?.restarts ?? 0, lastFailureTime: s.previous?.lastFailureTime };
  if (a.type === 'suspend') {
    status.savedDiskRevision = s.diskRevision;
    const running = s.domains.find((x) => x.host === a.host);
    status.savedSize = { vcpus: running?.vcpus ?? s.size.vcpus, memoryMiB: running?.memoryMiB ?? s.size.memoryMiB };
    // A restore continues this boot: keep whether the guest had reported in (guest-ready.ts).
    const ready = getCondition(s.previous?.conditions, GUEST_READY);
    status.savedGuestReady = ready?.status === 'True' ? { reason: ready.reason ?? '', message: ready.message ?? '' } : undefined;
  }
  if (boots || a.type === 'discardSavedState') {
    status.savedDiskRevision = undefined;
    status.savedSize = undefined;
    status.savedGuestReady = undefined;
  }
  const booted = bootedBy(a, s.host);
  // The size it runs with: what it was started with now, else what its domain reports.
  const seen = s.domains.find((x) => x.host === s.host);
  status.runningSize = phase === 'Running' || phase === 'Migrating'
    ? (booted ? { vcpus: s.size.vcpus, memoryMiB: s.size.memoryMiB }
      : seen?.vcpus && seen.memoryMiB ? { vcpus: seen.vcpus, memoryMiB: seen.memoryMiB } : s.previous?.runningSize)
    : undefined;
  if (booted || (phase === 'Running' && !s.previous?.bootTime)) status.bootTime = s.nowIso;
  // A fresh boot meets a pending restart request as well.
  if ((a.type === 'start' || a.type === 'restart') && s.restartValue) status.restartedFor = s.restartValue;
  if (d.unexpectedDeath) {
    status.restarts = (s.previous?.restarts ?? 0) + 1;
    status.lastFailureTime = s.nowIso;
  }
  return status;
}

/**
 * The status after the action failed: Failed, where it runs (if anywhere), and why. A failed boot
 * (start, restore, restart) may still have left its domain running (`xl create` done, the check
 * after it timed out): the next pass then adopts it, and its boot timeout must count from this
 * attempt, not from a boot before (which declared a fresh guest timed out at once).
 */
export function failedStatus(d: RuntimeDecision, err: Error, host: string | undefined, previous: VirtualNodeStatus | undefined, nowIso: string): VirtualNodeStatus {
  const status: VirtualNodeStatus = { phase: 'Failed', host, message: `${d.action.type} failed: ${err.message}`, lastFailureTime: nowIso, restarts: previous?.restarts ?? 0 };
  if (bootedBy(d.action, 'attempted')) status.bootTime = nowIso;
  return status;
}
