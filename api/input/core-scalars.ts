// Plain scalars as the yaml package's YAML 1.2 core schema reads them (the same tests and
// conversions, copied from yaml/dist/schema/core), for the fast YAML paths (fast-yaml.ts,
// simple-yaml.ts), which must give exactly what the yaml package gives.

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

/** The yaml package's core schema for plain scalars (yaml/dist/schema/core/*.js), tried in this order. */
export const CORE: { tag: string; resolve(s: string): boolean; construct(s: string): unknown }[] = [
  { tag: 'tag:yaml.org,2002:null', resolve: (s) => NULL_WORDS.has(s), construct: () => null },
  { tag: 'tag:yaml.org,2002:bool', resolve: (s) => BOOL_WORDS.has(s), construct: (s) => s[0] === 't' || s[0] === 'T' },
  {
    tag: 'tag:yaml.org,2002:int',
    resolve: (s) => mayBeNumber(s, false) && (/^0o[0-7]+$/.test(s) || /^[-+]?[0-9]+$/.test(s) || /^0x[0-9a-fA-F]+$/.test(s)),
    construct: (s) => (s.startsWith('0o') ? intResolve(s, 2, 8) : s.startsWith('0x') ? intResolve(s, 2, 16) : intResolve(s, 0, 10)),
  },
  {
    tag: 'tag:yaml.org,2002:float',
    resolve: (s) => mayBeNumber(s, true) && (/^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/.test(s)
      || /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/.test(s)
      || /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/.test(s)),
    construct: (s) => {
      if (/^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/.test(s)) {
        return s.slice(-3).toLowerCase() === 'nan' ? NaN : s[0] === '-' ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
      }
      return parseFloat(s);
    },
  },
];

/** What the core schema makes of a plain scalar: null, a boolean, a number, or the string itself. */
export function resolvePlainScalar(s: string): unknown {
  for (const t of CORE) if (t.resolve(s)) return t.construct(s);
  return s;
}

