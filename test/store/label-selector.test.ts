import assert from 'node:assert/strict';
import { compileLabelSelector, parseLabelSelector } from '../../api/store/label-selector.js';

describe('label selectors', () => {
  it('parses every requirement form', () => {
    assert.deepEqual(parseLabelSelector('a=b, c==d,e!=f,g in (x, y),h notin (z),i,!j, example.com/k=v-1.2_3'), [
      { key: 'a', op: 'in', values: ['b'] },
      { key: 'c', op: 'in', values: ['d'] },
      { key: 'e', op: 'notIn', values: ['f'] },
      { key: 'g', op: 'in', values: ['x', 'y'] },
      { key: 'h', op: 'notIn', values: ['z'] },
      { key: 'i', op: 'exists' },
      { key: 'j', op: 'notExists' },
      { key: 'example.com/k', op: 'in', values: ['v-1.2_3'] },
    ]);
    assert.deepEqual(parseLabelSelector(''), []);
    assert.deepEqual(parseLabelSelector('a='), [{ key: 'a', op: 'in', values: [''] }]);
  });

  it('matches as Kubernetes does', () => {
    const m = (sel: string, labels?: Record<string, string>) => compileLabelSelector(sel)(labels);
    assert.equal(m('a=b', { a: 'b' }), true);
    assert.equal(m('a=b', { a: 'c' }), false);
    assert.equal(m('a=b', undefined), false);
    assert.equal(m('a!=b', undefined), true, '!= matches a missing key');
    assert.equal(m('a notin (b)', {}), true, 'notin matches a missing key');
    assert.equal(m('a in (b,c)', { a: 'c' }), true);
    assert.equal(m('a in (b,c)', { x: 'c' }), false);
    assert.equal(m('a', { a: '' }), true);
    assert.equal(m('!a', { a: '' }), false);
    assert.equal(m('a,b=c', { a: '1', b: 'c' }), true);
    assert.equal(m('a,b=c', { b: 'c' }), false);
    assert.equal(m('  ', {}), true);
    assert.equal(m('toString', {}), false, 'keys are own labels only');
  });

  it('rejects bad selectors with a message naming the problem', () => {
    const cases: [string, string][] = [
      ['a in b', 'invalid label selector "a in b": expected "(", found "b" at position 6'],
      ['a in (b', 'invalid label selector "a in (b": expected ")", found the end'],
      ['a=b,', 'invalid label selector "a=b,": expected a label key, found the end'],
      ['a b', 'invalid label selector "a b": expected "=", "==", "!=", "in", "notin" or "," after "a", found "b" at position 3'],
      ['a>1', 'invalid label selector "a>1": invalid label key "a>1": a name is 1-63 characters, alphanumeric, \'-\', \'_\' or \'.\', starting and ending with an alphanumeric character'],
      ['a=-x', 'invalid label selector "a=-x": invalid label value "-x": at most 63 characters, alphanumeric, \'-\', \'_\' or \'.\', starting and ending with an alphanumeric character'],
      ['Bad_/x=1', 'invalid label selector "Bad_/x=1": invalid label key "Bad_/x": the prefix must be a DNS subdomain'],
      ['!', 'invalid label selector "!": expected a label key after "!", found the end'],
      [`${'k'.repeat(64)}=1`, `invalid label selector "${'k'.repeat(64)}=1": invalid label key "${'k'.repeat(64)}": a name is 1-63 characters, alphanumeric, '-', '_' or '.', starting and ending with an alphanumeric character`],
    ];
    for (const [sel, msg] of cases) assert.throws(() => parseLabelSelector(sel), { message: msg }, sel);
  });
});
