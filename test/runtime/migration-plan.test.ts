import assert from 'node:assert/strict';
import { planMigration, type MigrationInput } from '../../reconcilers/runtime/migration-plan.js';

const pending: MigrationInput = {
  phase: 'Pending', source: 'blade1', target: 'blade2', targetRefusal: undefined, vmMigratable: true,
  sourceDomain: 'running', targetDomain: 'absent', sourceMigration: 'none', busyOnNodes: 0, maxPerNode: 2,
  startedMs: undefined, nowMs: 100_000, timeoutMs: 60_000,
};
const running: MigrationInput = { ...pending, phase: 'Running', startedMs: 90_000, sourceMigration: 'active', targetDomain: 'incoming' };

describe('planMigration', () => {
  it('begins a valid pending migration', () => {
    assert.deepEqual(planMigration(pending).action, { type: 'begin', source: 'blade1', target: 'blade2' });
  });
  it('fails without touching hosts when the request is impossible', () => {
    assert.equal(planMigration({ ...pending, vmMigratable: false, vmRefusal: 'the VC is Suspended' }).action.type, 'fail');
    assert.deepEqual(planMigration({ ...pending, target: 'blade1' }).action, { type: 'fail', why: 'the VM already runs on blade1' });
    assert.deepEqual(planMigration({ ...pending, targetRefusal: 'insufficient memory' }).action, { type: 'fail', why: 'target blade2 refused: insufficient memory' });
  });
  it('waits while the per-node migration limit is reached', () => {
    const d = planMigration({ ...pending, busyOnNodes: 2 });
    assert.deepEqual(d.action, { type: 'none' });
    assert.ok(d.requeueAfterMs! > 0);
  });
  it('waits while QEMU transfers', () => {
    const d = planMigration(running);
    assert.deepEqual(d.action, { type: 'none' });
    assert.ok(d.requeueAfterMs! > 0);
  });
  it('finishes once QEMU reports completion, also after a manager crash', () => {
    assert.deepEqual(planMigration({ ...running, sourceMigration: 'completed', sourceDomain: 'paused', targetDomain: 'running' }).action, { type: 'finish', source: 'blade1', target: 'blade2' });
    assert.deepEqual(planMigration({ ...running, sourceMigration: 'none', sourceDomain: 'absent', targetDomain: 'running' }).action, { type: 'finish', source: 'blade1', target: 'blade2' });
  });
  it('finishes whenever the target runs: the switchover is past, whatever the source still shows, even past the timeout', () => {
    // Xen: xl on the source still finishing (<name>--migratedaway, listed as migrating), or its copy
    // suspended and not yet renamed; a manager that undid this destroyed the running target
    for (const [sourceMigration, sourceDomain] of [['active', 'running'], ['none', 'paused'], ['none', 'running']] as const) {
      assert.deepEqual(planMigration({ ...running, sourceMigration, sourceDomain, targetDomain: 'running' }).action, { type: 'finish', source: 'blade1', target: 'blade2' }, `${sourceMigration}/${sourceDomain}`);
    }
    assert.equal(planMigration({ ...running, targetDomain: 'running', nowMs: 90_000 + 60_001 }).action.type, 'finish');
  });
  it('aborts when the target dies mid-transfer, on failure, on timeout and on an interrupted start', () => {
    assert.equal(planMigration({ ...running, targetDomain: 'absent' }).action.type, 'abort');
    assert.equal(planMigration({ ...running, sourceMigration: 'failed' }).action.type, 'abort');
    assert.equal(planMigration({ ...running, nowMs: 90_000 + 60_001 }).action.type, 'abort');
    assert.equal(planMigration({ ...running, sourceMigration: 'none', targetDomain: 'incoming' }).action.type, 'abort');
  });
  it('settles a migration stranded past its point of no return (Xen: <name>--migratedaway, xl gone) whatever the target shows, past the timeout too, never aborting it', () => {
    // aborting would destroy the target's complete copy and leave the source's suspended: no copy running
    for (const targetDomain of ['absent', 'incoming', 'paused', 'running'] as const) {
      for (const nowMs of [91_000, 90_000 + 60_001]) {
        const d = planMigration({ ...running, sourceMigration: 'stranded', sourceDomain: 'paused', targetDomain, nowMs });
        assert.deepEqual(d.action, { type: 'settle', source: 'blade1', target: 'blade2' }, `${targetDomain} at ${nowMs}`);
      }
    }
    assert.deepEqual(planMigration({ ...running, phase: 'Failed', sourceMigration: 'stranded' }).action, { type: 'none' });
  });
  it('does nothing once finished', () => {
    assert.deepEqual(planMigration({ ...running, phase: 'Succeeded' }).action, { type: 'none' });
    assert.deepEqual(planMigration({ ...running, phase: 'Failed' }).action, { type: 'none' });
  });
});
