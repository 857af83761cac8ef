// A fast path for reading plain YAML: js-yaml (about 8x faster than the yaml package in a fresh
// process: 1,000 documents in ~0.15 s of CPU instead of ~1.2 s), used only where it gives exactly
// what the yaml package gives, so the yaml package stays the one definition of what a manifest
// means. It resolves plain scalars with the yaml package's YAML 1.2 core schema (the same tests
// and conversions, copied from yaml/dist/schema/core) and is tried only on text without what the
// two could read differently or what needs the full parser's checks:
//   - tags (`!`), anchors and aliases (`&`, `*`): refused or capped by parse-documents;
//   - directives (`%`) and document end markers (`...`), tabs, CR, a byte-order mark;
//   - a map key that js-yaml would turn into "null" (yaml gives ""), or `__proto__`.
// Anything else unusual, and every error (duplicate keys, syntax), returns undefined: the caller
// parses the text with the yaml package, which also finds the lines errors are reported at.
// test/api/fast-yaml.property.test.ts checks the two agree on generated documents.

import jsYaml from 'js-yaml';
import { CORE } from './core-scalars.js';
import { simpleParseDocuments } from './simple-yaml.js';

/** CORE as js-yaml types. */
const CORE_AS_YAML = jsYaml.FAILSAFE_SCHEMA.extend({
  implicit: CORE.map((t) => new jsYaml.Type(t.tag, { kind: 'scalar', resolve: t.resolve, construct: t.construct })),
});

/** Characters and line starts the fast path leaves to the yaml package. */
const NOT_PLAIN = /[!&*\t\r\ufeff]|^%|^\.\.\.(?:\s|$)/m;

/**
 * The documents of `text` (null for an empty one), or undefined when the text must be read by the
 * yaml package (see the file comment). Never throws.
 */
export function fastParseDocuments(text: string): unknown[] | undefined {
  if (NOT_PLAIN.test(text)) return undefined;
  const simple = simpleParseDocuments(text); // the plain block YAML most manifests are, faster still
  if (simple) return simple;
  let docs: unknown[];
  try {
    docs = jsYaml.loadAll(text, undefined, { schema: CORE_AS_YAML });
  } catch {
    return undefined;
  }
  return docs.every(plainKeys) ? docs.map((d) => (d === undefined ? null : d)) : undefined;
}

/** No key that the two parsers name differently (a null key: js-yaml "null", yaml ""). */
function plainKeys(v: unknown): boolean {
  if (Array.isArray(v)) return v.every(plainKeys);
  if (v === null || typeof v !== 'object') return true;
  for (const [k, x] of Object.entries(v)) {
    if (k === 'null' || k === '' || k === '__proto__' || !plainKeys(x)) return false;
  }
  return true;
}
