import assert from 'node:assert/strict';
import { getCondition } from '../../api/conditions.js';
import { statusAfterSync, truncateMessage, type GitSourceStatus } from '../../reconcilers/gitops/sync-status.js';

const t1 = new Date('2026-01-01T00:00:00Z');
const t2 = new Date('2026-01-01T00:05:00Z');
const pn = { kind: 'PhysicalNode', name: 'blade1' };

describe('gitops statusAfterSync', () => {
  it('a successful sync: Ready True, not Stalled, revision, counts, inventory, no error', () => {
    const s = statusAfterSync(undefined, { ok: true, revision: 'abc', applied: 3, pruned: 1, inventory: [pn], orphaned: 0 }, 2, t1);
    assert.equal(s.lastAppliedRevision, 'abc');
    assert.equal(s.appliedCount, 3);
    assert.equal(s.prunedCount, 1);
    assert.deepEqual(s.inventory, [pn]);
    assert.equal(s.lastError, '');
    assert.equal(s.observedGeneration, 2);
    assert.equal(s.lastSyncTime, '2026-01-01T00:00:00Z');
    assert.deepEqual(getCondition(s.conditions, 'Ready'), {
      type: 'Ready', status: 'True', reason: 'Synced', message: 'applied 3 object(s) of revision abc, pruned 1',
      lastTransitionTime: t1.toISOString(), observedGeneration: 2,
    });
    assert.equal(getCondition(s.conditions, 'Stalled')?.status, 'False');
  });

  it('a refused revision keeps the last applied revision and inventory, and is Stalled with the reason', () => {
    const prev = statusAfterSync(undefined, { ok: true, revision: 'good', applied: 1, pruned: 0, inventory: [pn], orphaned: 0 }, 1, t1);
    const s = statusAfterSync(prev, {
      ok: false, reason: 'ValidationFailed', revision: 'bad',
      message: 'nothing was applied: vc.yaml: document 1 (line 4): spec.nodes: must be integer',
    }, 1, t2);
    assert.equal(s.lastAppliedRevision, 'good');
    assert.deepEqual(s.inventory, [pn]);
    assert.match(s.lastError ?? '', /^revision bad: nothing was applied: vc\.yaml: document 1 \(line 4\): spec\.nodes/);
    const ready = getCondition(s.conditions, 'Ready');
    assert.equal(ready?.status, 'False');
    assert.equal(ready?.reason, 'ValidationFailed');
    assert.equal(ready?.lastTransitionTime, t2.toISOString());
    const stalled = getCondition(s.conditions, 'Stalled');
    assert.equal(stalled?.status, 'True');
    assert.equal(stalled?.reason, 'ValidationFailed');
  });

  it('a transient failure is not Stalled, and a partial inventory replaces the old one', () => {
    const prev: GitSourceStatus = { inventory: [pn] };
    const vc = { kind: 'VirtualCluster', namespace: 'default', name: 'a' };
    const s = statusAfterSync(prev, { ok: false, reason: 'ApplyFailed', message: 'store down', inventory: [vc, pn] }, 1, t1);
    assert.deepEqual(s.inventory, [vc, pn]);
    assert.equal(getCondition(s.conditions, 'Ready')?.reason, 'ApplyFailed');
    assert.equal(getCondition(s.conditions, 'Stalled')?.status, 'False');
  });

  it('mentions objects kept because prune is off', () => {
    const s = statusAfterSync(undefined, { ok: true, revision: 'r', applied: 0, pruned: 0, inventory: [pn], orphaned: 1 }, 1, t1);
    assert.match(getCondition(s.conditions, 'Ready')?.message ?? '', /1 object\(s\) left the directory and were kept \(sync with --prune/);
  });

  it('cuts a huge error message at a line boundary and says how much was left out', () => {
    const lines = Array.from({ length: 2000 }, (_, i) => `f${i}.yaml: document 1 (line 3): spec.nodes: must be integer`);
    const m = truncateMessage(lines.join('\n'));
    assert.ok(m.length < 16_384 + 200);
    assert.match(m, /^f0\.yaml: /);
    const kept = m.split('\n').length - 1;
    assert.match(m, new RegExp(`\\.\\.\\. and ${2000 - kept} more line\\(s\\)`));
    assert.equal(truncateMessage('short'), 'short');
  });
});
