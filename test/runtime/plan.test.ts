import assert from 'node:assert/strict';
import { planRuntime, restartDelayMs, type RuntimeInput } from '../../reconcilers/runtime/plan.js';

const base: RuntimeInput = {
  boundHost: 'blade1', desired: 'Running', deleting: false, storageReady: true, networkReady: true,
  domains: [], savedState: false, migrationActive: false, lastPhase: 'Scheduled',
  restarts: 0, lastFailureMs: undefined, nowMs: 1_000_000,
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

  it('leaves both copies alone while a migration settles, and counts a death right after a migration', () => {
    const settling = plan({ migrationSettling: true, domains: [{ host: 'blade1', state: 'paused' }, { host: 'blade2', state: 'running' }] });
    assert.deepEqual(settling.action, { type: 'none' });
    assert.equal(plan({ migrationSettling: true, domains: [{ host: 'blade2', state: 'incoming' }] }).action.type, 'none');
    const died = plan({ lastPhase: 'Migrating' });
    assert.equal(died.unexpectedDeath, true);
    assert.equal(died.phase, 'Failed');
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
});
