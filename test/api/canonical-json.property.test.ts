// canonicalJson (the text apply records in the last-applied annotation and compares) writes the
// JSON itself; it must give exactly JSON.stringify of a key-sorted copy, as it did before, or
// every object applied earlier would show as configured on its next apply.

import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalJson, isPlainObject } from '../../api/apply/three-way-merge.js';

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (!isPlainObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) out[k] = sortKeys(v[k]);
  return out;
}

const reference = (v: unknown) => JSON.stringify(sortKeys(v));

describe('canonicalJson', () => {
  it('is JSON.stringify of a key-sorted copy for any value (property)', () => {
    fc.assert(fc.property(fc.anything({
      withSparseArray: true, withBoxedValues: true, withDate: true, withMap: true, withSet: true,
      withNullPrototype: true, withObjectString: true,
    }), (v) => assert.equal(canonicalJson(v), reference(v))), { numRuns: 5000 });
  });

  it('for JSON documents too (property), where keys of any order give one text', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => {
      const text = canonicalJson(v);
      assert.equal(text, reference(v));
      assert.equal(canonicalJson(JSON.parse(JSON.stringify(v))), text);
    }), { numRuns: 2000 });
    assert.equal(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: null } }), '{"a":{"c":null,"d":[2,{"y":2,"z":1}]},"b":1}');
  });

  it('drops what JSON.stringify drops, and writes null where it does', () => {
    // eslint-disable-next-line no-sparse-arrays
    for (const v of [undefined, () => 1, Symbol('s'), [undefined, () => 1, Symbol('s')], { a: undefined, b: () => 1, c: 1 }, new Date(0), NaN, -0, Infinity, [, 1], { '': 1, 'é': 2, '\u2028': 3, '10': 4, '9': 5, '01': 6, '4294967295': 7, '4294967294': 8 }, JSON.parse('{"__proto__": {"a": 1}, "b": 2}'), JSON.parse('{"__proto__": 1}')]) {
      assert.equal(canonicalJson(v), reference(v));
    }
  });
});
