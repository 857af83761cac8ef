import assert from 'node:assert/strict';
import { decideGuestReady } from '../../reconcilers/runtime/guest-ready.js';
import { currentDomain, failedStatus, planRuntime, restartDelayMs, runtimeStatus, WATCHED_WAIT_MS, type RuntimeDecision, type RuntimeInput, type StatusInput } from '../../reconcilers/runtime/plan.js';

const base: RuntimeInput = {
  boundHost: 'blade1', desired: 'Running', deleting: false, storageReady: true, networkReady: true,
  domains: [], savedState: false, migrationActive: false, lastPhase: 'Scheduled',
  restarts: 0, lastFailureMs: undefined, nowMs: 1_000_000, placementSettled: true,
};
const plan = (over: Partial<RuntimeInput>) => planRuntime({ ...base, ...over });

describe('planRuntime', () => {
  const table: [string, Partial<RuntimeInput>, unknown, string][] = [
    ['starts a bound node with ready disks and network', {}, { type: 'start', host: 'blade1' }, 'Starting'],
    ['waits for placement', { boundHost: undefined }, { type: 'none' }, 'Pending'],
    ['waits for volumes', { storageReady: false }, { type: 'none' }, 'Scheduled'],
    ['fails closed without network rules', { networkReady: false }, { type: 'none' }, 'Scheduled'],
    ['restores a saved state on the (new) bound host', { savedState: true, lastPhase: 'Suspended', boundHost: 'blade3' }, { type: 'restore', host: 'blade3' }, 'Starting'],
    ['leaves a running node alone', { domains: [{ host: 'blade1', state: 'running' }], lastPhase: 'Running' }, { type: 'none' }, 'Running'],
    ['suspends a running node', { desired: 'Suspended', domains: [{ host: 'blade1', state: 'running' }] }, { type: 'suspend', host: 'blade1' }, 'Suspending'],
    ['reports Suspended once saved', { desired: 'Suspended', savedState: true }, { type: 'none' }, 'Suspended'],
    ['shuts down for Stopped', { desired: 'Stopped', domains: [{ host: 'blade1', state: 'running' }] }, { type: 'shutdown', host: 'blade1' }, 'Stopped'],
    ['discards a saved state when Stopped', { desired: 'Stopped', savedState: true }, { type: 'discardSavedState' }, 'Stopped'],
    ['does nothing but report while migrating', { migrationActive: true, domains: [{ host: 'blade1', state: 'running' }, { host: 'blade2', state: 'incoming' }] }, { type: 'none' }, 'Migrating'],
    ['destroys a second copy, keeping the bound one', { domains: [{ host: 'blade2', state: 'running' }, { host: 'blade1', state: 'running' }] }, { type: 'destroy', host: 'blade2', reason: 'duplicate of the copy on blade1' }, 'Running'],
    ['removes a stale incoming target', { domains: [{ host: 'blade1', state: 'running' }, { host: 'blade2', state: 'incoming' }] }, { type: 'destroy', host: 'blade2', reason: 'incoming migration target without a migration' }, 'Running'],
    ['destroys the domain of a deleted node', { deleting: true, domains: [{ host: 'blade1', state: 'paused' }] }, { type: 'destroy', host: 'blade1', reason: 'VirtualNode deleted' }, 'Stopped'],
    ['waits for a migration to move a node running off its binding', { boundHost: 'blade2', domains: [{ host: 'blade1', state: 'running' }] }, { type: 'none' }, 'Running'],
    ['restarts a running node when asked', { restartRequested: true, domains: [{ host: 'blade1', state: 'running' }], lastPhase: 'Running' }, { type: 'restart', host: 'blade1' }, 'Running'],
    ['a restart request does not start a stopped node', { restartRequested: true, desired: 'Stopped' }, { type: 'none' }, 'Stopped'],
    ['a restart request waits while migrating', { restartRequested: true, migrationActive: true, domains: [{ host: 'blade1', state: 'running' }] }, { type: 'none' }, 'Migrating'],
  ];
  for (const [name, input, action, phase] of table) {
    it(name, () => {
      const d = plan(input);
      assert.deepEqual(d.action, action);
      assert.equal(d.phase, phase);
    });
  }

  it('a waiting VM is looked at again without an event only after a minute (10,000 waiting: at most ~170 reconciles/s)', () => {
    assert.ok(WATCHED_WAIT_MS >= 60_000, `WATCHED_WAIT_MS ${WATCHED_WAIT_MS}`);
  });

  it('waits for its network rules as for its volumes: woken by its VC\'s events, checked again only after WATCHED_WAIT_MS', () => {
    assert.equal(plan({ networkReady: false }).requeueAfterMs, WATCHED_WAIT_MS);
    assert.equal(plan({ storageReady: false }).requeueAfterMs, WATCHED_WAIT_MS);
  });

  it('leaves both copies alone while a migration settles, and counts a death right after a migration', () => {
    const settling = plan({ migrationSettling: true, domains: [{ host: 'blade1', state: 'paused' }, { host: 'blade2', state: 'running' }] });
    assert.deepEqual(settling.action, { type: 'none' });
    assert.equal(plan({ migrationSettling: true, domains: [{ host: 'blade2', state: 'incoming' }] }).action.type, 'none');
    const died = plan({ lastPhase: 'Migrating' });
    assert.equal(died.unexpectedDeath, true);
    assert.equal(died.phase, 'Failed');
  });

  it('says a domain died where it ran: the target right after a migration, while the binding is still the source', () => {
    const onTarget = plan({ lastPhase: 'Running', boundHost: 'blade1', lastHost: 'blade2', migrationSettling: true, settledOn: 'blade2' });
    assert.match(onTarget.message, /^the domain on blade2 died unexpectedly/);
    assert.match(plan({ lastPhase: 'Running', boundHost: 'blade1', lastHost: 'blade2' }).message, /^the domain on blade2 died/);
    assert.match(plan({ lastPhase: 'Running', boundHost: 'blade1' }).message, /^the domain on blade1 died/, 'no host reported: the binding');
  });

  it('while a migration settles, the copy where it left the VM is the current one, before placement moves the binding', () => {
    // a Xen source lists `<name>--migratedaway` (running) until xl destroys it; the binding is still the source's
    const both = { boundHost: 'blade1', domains: [{ host: 'blade1', state: 'running' as const }, { host: 'blade2', state: 'running' as const }] };
    const settling = plan({ ...both, migrationSettling: true, settledOn: 'blade2' });
    assert.deepEqual(settling.action, { type: 'none' });
    assert.match(settling.message, /running on blade2/);
    assert.equal(currentDomain({ ...both, migrationSettling: true, settledOn: 'blade2' })?.host, 'blade2');
    // a failed migration settles on its source; with nothing settling, the bound host's copy
    assert.equal(currentDomain({ ...both, migrationSettling: true, settledOn: 'blade1' })?.host, 'blade1');
    assert.equal(currentDomain({ ...both, boundHost: 'blade2' })?.host, 'blade2');
    assert.equal(currentDomain({ ...both, settledOn: 'blade2' })?.host, 'blade1', 'settledOn counts only while settling');
    assert.equal(currentDomain({ boundHost: 'blade1', domains: [{ host: 'blade2', state: 'paused' }, { host: 'blade1', state: 'incoming' }] })?.host, 'blade2');
  });

  it('reports an unexpected death as Failed and restarts after the backoff', () => {
    const died = plan({ lastPhase: 'Running' });
    assert.equal(died.phase, 'Failed');
    assert.equal(died.unexpectedDeath, true);
    assert.deepEqual(died.action, { type: 'none' });
    assert.equal(died.requeueAfterMs, restartDelayMs(1));
    const early = plan({ lastPhase: 'Failed', restarts: 1, lastFailureMs: base.nowMs - 500 });
    assert.deepEqual(early.action, { type: 'none' });
    assert.equal(early.requeueAfterMs, restartDelayMs(1) - 500);
    const later = plan({ lastPhase: 'Failed', restarts: 1, lastFailureMs: base.nowMs - restartDelayMs(1) });
    assert.deepEqual(later.action, { type: 'start', host: 'blade1' });
  });

  it('grows the restart backoff exponentially up to five minutes', () => {
    assert.deepEqual([1, 2, 3, 4].map(restartDelayMs), [2000, 4000, 8000, 16000]);
    assert.equal(restartDelayMs(40), 300_000);
  });

  it('boots only on a settled placement: a wait that writes only phase and message', () => {
    const d = plan({ placementSettled: false });
    assert.deepEqual(d.action, { type: 'none' });
    assert.equal(d.phase, 'Scheduled');
    assert.equal(d.progressOnly, true);
    assert.equal(d.requeueAfterMs, WATCHED_WAIT_MS, 'a backstop: the Placed condition of the VC is watched');
    // Waits on other controllers that wake the VM by watch events are not polled every few seconds.
    assert.equal(plan({ boundHost: undefined }).requeueAfterMs, WATCHED_WAIT_MS);
    assert.equal(plan({ storageReady: false }).requeueAfterMs, WATCHED_WAIT_MS);
    // Placement does not gate what is not a boot.
    assert.equal(plan({ placementSettled: false, desired: 'Stopped', domains: [{ host: 'blade1', state: 'running' }] }).action.type, 'shutdown');
    // An unsettled placement is reported before missing network rules.
    assert.equal(plan({ placementSettled: false, networkReady: false }).message, 'waiting for placement to settle');
  });

  it('a saved state that no longer fits is discarded and the VM boots afresh; a disk reset still coming is waited for', () => {
    const stale = plan({ savedState: true, lastPhase: 'Suspended', savedStateStale: { why: 'resized while suspended', event: 'resized' } });
    assert.deepEqual(stale.action, { type: 'start', host: 'blade1', discardSavedState: 'resized' });
    assert.match(stale.message, /starting afresh on blade1: resized while suspended/);
    const pending = plan({ savedState: true, lastPhase: 'Suspended', diskResetPending: 'waiting for the reset', savedStateStale: { why: 'x', event: 'x' } });
    assert.deepEqual(pending.action, { type: 'none' });
    assert.equal(pending.phase, 'Suspended');
    assert.equal(pending.progressOnly, true);
    // Neither matters without a saved state.
    assert.deepEqual(plan({ savedStateStale: { why: 'x', event: 'x' } }).action, { type: 'start', host: 'blade1' });
  });

  it('deleting with no domain left anywhere: finalize', () => {
    assert.equal(plan({ deleting: true }).finalize, true);
    assert.equal(plan({ deleting: true, migrationActive: true }).finalize, true);
    assert.equal(plan({ deleting: true, domains: [{ host: 'blade1', state: 'running' }] }).finalize, undefined);
    assert.equal(plan({ deleting: true, savedState: true }).finalize, undefined, 'the saved state goes first');
    assert.equal(plan({}).finalize, undefined);
  });
});

describe('runtimeStatus', () => {
  const s0: StatusInput = {
    host: undefined, domains: [], previous: { phase: 'Scheduled', restarts: 2, lastFailureTime: 'T0', bootTime: 'B0' },
    size: { vcpus: 2, memoryMiB: 512 }, diskRevision: '3', restartValue: undefined, nowIso: 'NOW',
  };
  const dec = (d: Partial<RuntimeDecision>): RuntimeDecision => ({ action: { type: 'none' }, phase: 'Scheduled', message: 'm', ...d });

  it('a start that left the domain on its host is Running, booted now with the spec size, saved state cleared', () => {
    const st = runtimeStatus(dec({ action: { type: 'start', host: 'blade1' }, phase: 'Starting' }), { ...s0, host: 'blade1', restartValue: 'r1' });
    assert.equal(st.phase, 'Running');
    assert.equal(st.host, 'blade1');
    assert.deepEqual(st.runningSize, { vcpus: 2, memoryMiB: 512 });
    assert.equal(st.bootTime, 'NOW');
    assert.equal(st.restartedFor, 'r1');
    assert.ok('savedDiskRevision' in st && st.savedDiskRevision === undefined, 'cleared, not kept');
    assert.equal(st.restarts, 2);
  });

  it('a boot says what the next pass over the running domain says, so no write of the message alone follows', () => {
    for (const over of [{}, { savedState: true, lastPhase: 'Suspended' as const }]) {
      const d = plan(over);
      assert.ok(d.action.type === 'start' || d.action.type === 'restore', d.action.type);
      const st = runtimeStatus(d, { ...s0, host: 'blade1' });
      const next = plan({ domains: [{ host: 'blade1', state: 'running' }], lastPhase: st.phase });
      assert.deepEqual(next.action, { type: 'none' });
      assert.equal(st.phase, next.phase);
      assert.equal(st.message, next.message, d.action.type);
    }
  });

  it('a suspend records the disk revision and the size the domain ran with', () => {
    const st = runtimeStatus(dec({ action: { type: 'suspend', host: 'blade1' }, phase: 'Suspending' }),
      { ...s0, domains: [{ host: 'blade1', state: 'running', vcpus: 1, memoryMiB: 256 }] });
    assert.equal(st.phase, 'Suspended');
    assert.equal(st.savedDiskRevision, '3');
    assert.deepEqual(st.savedSize, { vcpus: 1, memoryMiB: 256 });
    assert.equal(st.runningSize, undefined);
    assert.equal(st.savedGuestReady, undefined, 'the guest had not reported in');
  });

  it('a suspend keeps what GuestReady said if True; a restore, start or discard clears it', () => {
    const ready = { type: 'GuestReady', status: 'True' as const, reason: 'AgentReported', message: 'the guest agent answered: a-0 10.0.0.2', lastTransitionTime: 'T', observedGeneration: 1 };
    const previous = { ...s0.previous, conditions: [ready] };
    const st = runtimeStatus(dec({ action: { type: 'suspend', host: 'blade1' }, phase: 'Suspending' }), { ...s0, previous });
    assert.deepEqual(st.savedGuestReady, { reason: 'AgentReported', message: 'the guest agent answered: a-0 10.0.0.2' });
    const booting = { ...ready, status: 'False' as const, reason: 'Booting' };
    assert.equal(runtimeStatus(dec({ action: { type: 'suspend', host: 'blade1' }, phase: 'Suspending' }), { ...s0, previous: { ...s0.previous, conditions: [booting] } }).savedGuestReady, undefined);
    const withSaved = { ...s0.previous, savedGuestReady: { reason: 'AgentReported', message: 'm' } };
    for (const action of [{ type: 'restore', host: 'blade1' }, { type: 'start', host: 'blade1' }, { type: 'discardSavedState' }] as RuntimeDecision['action'][]) {
      const after = runtimeStatus(dec({ action, phase: 'Starting' }), { ...s0, host: 'blade1', previous: withSaved });
      assert.ok('savedGuestReady' in after && after.savedGuestReady === undefined, `${action.type} clears it (removed, not kept)`);
    }
  });

  it('an unexpected death counts a restart at now; a running domain keeps its reported size and boot time', () => {
    const died = runtimeStatus(dec({ phase: 'Failed', unexpectedDeath: true }), s0);
    assert.equal(died.restarts, 3);
    assert.equal(died.lastFailureTime, 'NOW');
    const running = runtimeStatus(dec({ phase: 'Running' }), { ...s0, host: 'blade1', domains: [{ host: 'blade1', state: 'running', vcpus: 1, memoryMiB: 256 }] });
    assert.deepEqual(running.runningSize, { vcpus: 1, memoryMiB: 256 });
    assert.equal(running.bootTime, undefined, 'kept as stored (absent), not rewritten');
  });

  it('a boot that failed yet left its domain running: the adopted guest\'s boot timeout counts from the attempt, not from a boot before', () => {
    // Seen on Xen (session 13): `xl create` made the domain, the check after it timed out (StartFailed),
    // the next pass found the domain running and declared the fresh guest BootTimeout at once.
    const before = { phase: 'Suspended' as const, bootTime: '2026-12-06T09:00:00.000Z', restarts: 0 };
    const attempt = '2026-12-06T10:00:00.000Z';
    for (const action of [{ type: 'start', host: 'blade1' }, { type: 'restore', host: 'blade1' }, { type: 'restart', host: 'blade1' }] as RuntimeDecision['action'][]) {
      const failed = failedStatus(dec({ action, phase: 'Starting' }), new Error('xl list -l timed out'), undefined, before, attempt);
      assert.equal(failed.phase, 'Failed');
      assert.equal(failed.bootTime, attempt, `${action.type}: the attempt is the boot`);
      // the next pass adopts the running domain (no action, Running): bootTime kept as the failed write stored it
      const adopted = runtimeStatus(dec({ phase: 'Running' }), { ...s0, host: 'blade1', previous: { ...before, ...failed } });
      const bootTime = adopted.bootTime ?? failed.bootTime;
      const d = decideGuestReady({ phase: 'Running', booted: false, previous: undefined, bootTimeMs: Date.parse(bootTime!), nowMs: Date.parse(attempt) + 60_000, timeoutMs: 300_000 });
      assert.equal(d.condition?.reason, 'Booting', `${action.type}: a minute after the attempt the guest is still booting, not timed out`);
    }
    const suspendFailed = failedStatus(dec({ action: { type: 'suspend', host: 'blade1' }, phase: 'Suspending' }), new Error('x'), 'blade1', before, attempt);
    assert.equal(suspendFailed.bootTime, undefined, 'a failed suspend keeps the boot time stored');
  });

  it('a progress-only wait writes phase and message only; finalize clears the host', () => {
    assert.deepEqual(runtimeStatus(dec({ progressOnly: true, message: 'waiting' }), s0), { phase: 'Scheduled', message: 'waiting' });
    const fin = runtimeStatus(dec({ finalize: true, phase: 'Stopped', message: 'the domain is gone' }), s0);
    assert.deepEqual(Object.keys(fin).sort(), ['host', 'message', 'phase']);
    assert.equal(fin.host, undefined);
  });
});
