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

const intResolve = (str: string, offset: number, radix: number): number => parseInt(str.substring(offset), radix);

// js-yaml asks every implicit type about every plain scalar, keys included. Most are words
// (apiVersion, busybox, vc-12): a look at the first character rules a type out before its
// regular expressions run. Each check only refuses what the type's expressions refuse.
const NULL_WORDS = new Set(['', '~', 'null', 'Null', 'NULL']);
const BOOL_WORDS = new Set(['true', 'True', 'TRUE', 'false', 'False', 'FALSE']);
/** 0-9, + or - (and . for floats): what a number of the core schema starts with. */
const mayBeNumber = (s: string, dot: boolean): boolean => {
  const c = s.charCodeAt(0);
  return (c >= 48 && c <= 57) || c === 43 || c === 45 || (dot && c === 46);
};

/** The yaml package's core schema for plain scalars (yaml/dist/schema/core/*.js), as js-yaml types. */
const CORE_AS_YAML = jsYaml.FAILSAFE_SCHEMA.extend({
  implicit: [
    new jsYaml.Type('tag:yaml.org,2002:null', {
      kind: 'scalar',
      resolve: (s: string) => NULL_WORDS.has(s),
      construct: () => null,
    }),
    new jsYaml.Type('tag:yaml.org,2002:bool', {
      kind: 'scalar',
      resolve: (s: string) => BOOL_WORDS.has(s),
      construct: (s: string) => s[0] === 't' || s[0] === 'T',
    }),
    new jsYaml.Type('tag:yaml.org,2002:int', {
      kind: 'scalar',
      resolve: (s: string) => mayBeNumber(s, false) && (/^0o[0-7]+$/.test(s) || /^[-+]?[0-9]+$/.test(s) || /^0x[0-9a-fA-F]+$/.test(s)),
      construct: (s: string) => (s.startsWith('0o') ? intResolve(s, 2, 8) : s.startsWith('0x') ? intResolve(s, 2, 16) : intResolve(s, 0, 10)),
    }),
    new jsYaml.Type('tag:yaml.org,2002:float', {
      kind: 'scalar',
      resolve: (s: string) => mayBeNumber(s, true) && (/^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/.test(s)
        || /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/.test(s)
        || /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/.test(s)),
      construct: (s: string) => {
        if (/^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/.test(s)) {
          return s.slice(-3).toLowerCase() === 'nan' ? NaN : s[0] === '-' ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
        }
        return parseFloat(s);
      },
    }),
  ],
});

/** Characters and line starts the fast path leaves to the yaml package. */
const NOT_PLAIN = /[!&*\t\r\ufeff]|^%|^\.\.\.(?:\s|$)/m;

/**
 * The documents of `text` (null for an empty one), or undefined when the text must be read by the
 * yaml package (see the file comment). Never throws.
 */
export function fastParseDocuments(text: string): unknown[] | undefined {
  if (NOT_PLAIN.test(text)) return undefined;
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
