import assert from 'node:assert/strict';
import { resolveKind, kindInfo, KINDS } from '../../api/kinds.js';
import { setCondition } from '../../api/conditions.js';

describe('kinds registry', () => {
  it('resolves kinds by kind, plural and short name, case-insensitively', () => {
    assert.equal(resolveKind('vc')?.kind, 'VirtualCluster');
    assert.equal(resolveKind('VirtualClusters')?.kind, 'VirtualCluster');
    assert.equal(resolveKind('PN')?.kind, 'PhysicalNode');
    assert.equal(resolveKind('nope'), undefined);
    assert.throws(() => kindInfo('nope'), /unknown kind "nope"/);
  });
  it('has distinct words for every kind', () => {
    const words = KINDS.flatMap((k) => [k.plural, k.singular, ...k.short]);
    assert.equal(new Set(words).size, words.length);
  });
});

describe('setCondition', () => {
  it('keeps lastTransitionTime unless the status changes, and always sets observedGeneration', () => {
    const t1 = new Date('2026-01-01T00:00:00Z');
    const t2 = new Date('2026-01-02T00:00:00Z');
    let c = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'A' }, 1, t1);
    c = setCondition(c, { type: 'Ready', status: 'False', reason: 'B', message: 'm' }, 2, t2);
    assert.deepEqual(c, [{ type: 'Ready', status: 'False', reason: 'B', message: 'm', lastTransitionTime: t1.toISOString(), observedGeneration: 2 }]);
    c = setCondition(c, { type: 'Ready', status: 'True', reason: 'C' }, 3, t2);
    assert.equal(c[0]!.lastTransitionTime, t2.toISOString());
  });
});
