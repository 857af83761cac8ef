// The fast YAML path (js-yaml with the yaml package's core schema) gives exactly what the yaml
// package gives, or steps aside: generated documents in block and flow style, every plain-scalar
// form the core schema resolves (and forms other schemas read differently), and the constructs it
// must leave to the yaml package.

import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseAllDocuments, stringify } from 'yaml';
import { fastParseDocuments } from '../../api/input/fast-yaml.js';
import { simpleParseDocuments } from '../../api/input/simple-yaml.js';
import { parseDocuments } from '../../api/input/parse-documents.js';

function slow(text: string): unknown[] {
  return parseAllDocuments(text, { uniqueKeys: true }).map((d) => {
    assert.deepEqual(d.errors, []);
    return d.toJS();
  });
}

/** Plain scalars whose meaning depends on the schema (1.1 vs 1.2 core, js-yaml's defaults). */
const TRICKY = [
  '1', '-1', '+12', '012', '0o17', '0o8', '0x1F', '0xg', '1_000', '0b101', '1.', '.5', '-.5', '1.5e3', '1e3', '1E-2', '+.inf', '-.Inf',
  '.INF', '.nan', '.NaN', 'nan', 'inf', 'true', 'True', 'TRUE', 'tRUE', 'yes', 'No', 'on', 'off', 'y', 'n', '~', 'null', 'Null',
  'NULL', 'nULL', '2001-12-14', '2001-12-14t21:59:43.10-05:00', '1:20', '12:30:45', '0.', '00', '-0', '9007199254740993',
  '123456789012345678901234567890', 'a b', '=', '<<', '-', 'x:y', '/san/x.qcow2', 'console=ttyS0',
];

describe('api/input: the fast YAML path agrees with the yaml package', () => {
  it('every tricky plain scalar, as a value, a key and a list item', () => {
    for (const s of TRICKY) {
      for (const text of [`v: ${s}\n`, `${s}: v\n`, `- ${s}\n`, `{a: ${s}}\n`, `[${s}]\n`]) {
        let expected: unknown[];
        try {
          expected = slow(text);
        } catch {
          continue; // the yaml package refuses it: nothing to agree on
        }
        const simple = simpleParseDocuments(text);
        if (simple !== undefined) assert.deepEqual(simple, expected, `simple path: ${JSON.stringify(text)}`);
        const fast = fastParseDocuments(text);
        if (fast === undefined) continue; // stepped aside: the yaml package reads it
        assert.deepEqual(fast, expected, JSON.stringify(text));
      }
    }
  });

  it('generated documents in block and flow style, several per file', () => {
    const key = fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(...TRICKY));
    const scalar = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom(...TRICKY), fc.integer(), fc.double({ noNaN: true }), fc.boolean(), fc.constant(null));
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, scalar, fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(key, tie('node'), { maxKeys: 4 })),
    })).node;
    let fastRuns = 0;
    let simpleRuns = 0;
    fc.assert(fc.property(fc.array(value, { minLength: 1, maxLength: 4 }), fc.boolean(), fc.boolean(), (docs, flow, compactSeq) => {
      const text = docs.map((d) => stringify(d, { lineWidth: 0, ...(flow ? { collectionStyle: 'flow' as const } : {}), ...(compactSeq ? { indentSeq: false } : {}) })).join('---\n');
      const expected = slow(text);
      // The simple line reader (tried first) gives the same or steps aside.
      const simple = simpleParseDocuments(text);
      if (simple !== undefined) {
        simpleRuns++;
        assert.deepEqual(simple, expected.map((d) => (d === undefined ? null : d)), `simple path:\n${text}`);
      }
      const fast = fastParseDocuments(text);
      if (fast === undefined) return;
      fastRuns++;
      assert.deepEqual(fast, expected.map((d) => (d === undefined ? null : d)), text);
    }), { numRuns: 400 });
    assert.ok(fastRuns > 100, `the fast path took only ${fastRuns} of 400 files`);
    assert.ok(simpleRuns > 0, 'the simple path took none of 400 files');
  });

  it('generated manifest-like documents: the simple line reader reads them as the yaml package does, or steps aside', () => {
    const key = fc.constantFrom('apiVersion', 'kind', 'metadata', 'name', 'spec', 'nodes', 'y', 'on', 'nan', 'b.c/d', 'x-y', 'k_8', 'nulls');
    const scalar = fc.oneof(
      { arbitrary: fc.stringMatching(/^[a-z][a-z0-9.-]{0,8}$/), weight: 8 },
      fc.constantFrom(...TRICKY), fc.integer(), fc.double({ noNaN: true }), fc.boolean(), fc.constant(null),
      fc.stringMatching(/^[a-z0-9 :#'"-]{0,6}$/), fc.constant({}), fc.constant([]));
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, scalar, fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(key, tie('node'), { maxKeys: 5 })),
    })).node;
    let simpleRuns = 0;
    fc.assert(fc.property(fc.array(fc.dictionary(key, value, { minKeys: 1, maxKeys: 6 }), { minLength: 1, maxLength: 4 }), fc.boolean(), (docs, compactSeq) => {
      const text = docs.map((d) => stringify(d, { lineWidth: 0, ...(compactSeq ? { indentSeq: false } : {}) })).join('---\n');
      const expected = slow(text);
      const simple = simpleParseDocuments(text);
      if (simple === undefined) return;
      simpleRuns++;
      assert.deepEqual(simple, expected, text);
      assert.deepEqual(fastParseDocuments(text), expected, text);
    }), { numRuns: 200 });
    assert.ok(simpleRuns > 20, `the simple path took only ${simpleRuns} of 200 files`);
  });

  it('line soup: texts of random lines (keys, items, values, odd indents, comments, separators) are read as the yaml package reads them, or left to it', () => {
    // Lines the simple reader must get right or refuse, including near misses of its subset.
    // Mostly forms of the subset (so that many texts are read), and near misses of it.
    const keyText = fc.oneof({ arbitrary: fc.constantFrom('a', 'kind', 'b.c/d', 'x-y', 'k_8'), weight: 6 },
      fc.constantFrom('null', 'True', 'on', '1a', 'a b', '"q"', 'a#', 'é', 'a', 'a'));
    const valueText = fc.oneof(
      { arbitrary: fc.constantFrom('x', 'vc-1', '1', '"a b"', "'c'", '{}', '[]', 'null', '/a/b.qcow2'), weight: 6 },
      fc.constantFrom(...TRICKY), fc.constantFrom('{ }', '""', "''", "'a''b'", '"a\\"b"', '"x', "'x", 'a:', 'a: b', 'a #c', '#c', '-', '- x', '-x', '-.5', '--x', 'x@y', 'é', ':x', 'a:b:'),
      fc.stringMatching(/^[a-z0-9 :#'"{}\[\],.@-]{0,6}$/));
    const indent = fc.oneof({ arbitrary: fc.constantFrom(0, 2, 4), weight: 8 }, fc.nat(6)).map((n) => ' '.repeat(n));
    const line = fc.oneof(
      { arbitrary: fc.tuple(indent, keyText, fc.option(valueText, { nil: undefined })).map(([i, k, v]) => `${i}${k}:${v === undefined ? '' : ` ${v}`}`), weight: 8 },
      { arbitrary: fc.tuple(indent, fc.option(valueText, { nil: undefined })).map(([i, v]) => `${i}-${v === undefined ? '' : ` ${v}`}`), weight: 3 },
      { arbitrary: fc.tuple(indent, keyText, valueText).map(([i, k, v]) => `${i}- ${k}: ${v}`), weight: 3 },
      fc.tuple(indent, valueText).map(([i, v]) => `${i}- - ${v}`),
      fc.constantFrom('---', '# c', '  # c', '', '   ', 'a: 1 ', '--- ', ' ---', '...'));
    let read = 0;
    fc.assert(fc.property(fc.array(line, { minLength: 1, maxLength: 8 }), fc.boolean(), (lines, eol) => {
      const text = lines.join('\n') + (eol ? '\n' : '');
      const simple = simpleParseDocuments(text);
      if (simple === undefined) return;
      read++;
      const docs = parseAllDocuments(text, { uniqueKeys: true });
      for (const d of docs) assert.deepEqual(d.errors, [], `simple path read a text the yaml package refuses:\n${text}`);
      assert.deepEqual(simple, docs.map((d) => d.toJS() ?? null), `simple path:\n${text}`);
    }), { numRuns: 3000 });
    assert.ok(read > 100, `the simple path read only ${read} of 3000 texts`);
  });

  it('steps aside for tags, anchors, aliases, directives, tabs, CR and null keys', () => {
    for (const text of ['a: !custom x\n', 'a: &x 1\nb: *x\n', '%YAML 1.1\n---\na: yes\n', 'a: 1\n...\n', 'a:\t1\n', 'a: 1\r\n', '~: 1\n', 'null: 1\n', 'a: 1\na: 2\n', 'a: [1\n']) {
      assert.equal(fastParseDocuments(text), undefined, JSON.stringify(text));
    }
    assert.deepEqual(fastParseDocuments('a: 1\n---\n---\n# only a comment\n---\nb: [x, 2]\n'), [{ a: 1 }, null, null, { b: ['x', 2] }]);
  });

  it('parseDocuments: the same documents either way, and lines looked up only when asked for', () => {
    const text = '# intro\n---\nkind: A\nmetadata:\n  name: a\n---\n---\nkind: B\nspec:\n  x: 1\n';
    const { documents, issues } = parseDocuments('f.yaml', text);
    assert.deepEqual(issues, []);
    assert.deepEqual(documents.map((d) => [d.document, d.value]), [[1, { kind: 'A', metadata: { name: 'a' } }], [3, { kind: 'B', spec: { x: 1 } }]]);
    assert.deepEqual(documents.map((d) => [d.line, d.lineOf(['spec', 'x']), d.lineOf(['metadata', 'name'])]), [[3, 3, 5], [8, 10, 8]]);
  });
});
