// The fastest path for reading YAML, tried before js-yaml (fast-yaml.ts): a line reader for the
// block YAML that `vcctl get -o yaml`, the yaml package's stringify and hand-written manifests
// mostly are. It reads only this subset and returns undefined for anything else, which then goes
// to js-yaml and, failing that, to the yaml package (the one definition of what a manifest means):
//   - documents separated by lines that are exactly `---`; comment lines (`#` after spaces) and
//     blank lines anywhere;
//   - block mappings (`key: value`, `key:` with a nested block), keys a letter followed by
//     letters, digits, `_ . / -` and not a word the core schema turns into null or a boolean;
//   - block sequences (`- value`, `- key: value` starting a mapping, at the parent key's indent
//     or deeper);
//   - values: plain scalars without spaces (resolved with the core schema, as fast-yaml.ts
//     resolves them), quoted strings without escapes or quotes inside, `{}` and `[]`.
// Anything else (a `#` after content, flow collections, block scalars, anchors, multi-line
// scalars, duplicate keys, odd indentation) is left to the other parsers: every input either
// gives what the yaml package gives or undefined. test/api/fast-yaml.property.test.ts checks it.
//
// It reads the text in place (character codes and offsets, one pass over the lines, a table per
// character class, no regular expression and no string per line): `vcctl apply` of 1,000
// manifests spends its time here otherwise.

import { resolvePlainScalar } from './core-scalars.js';

/**
 * A mapping entry from its key to the end of its line: the key (1) and nothing (a nested block
 * follows) or one space and a value: `{}` or `[]` (2), a double-quoted string without " or \\
 * (3), a single-quoted one without ' (4), or a plain scalar (5). The caller checks that the match
 * ends where the line does.
 */
const ENTRY = /([A-Za-z][A-Za-z0-9_./-]*):(?:$| (?:(\{\}|\[\])|"([^"\\\n]*)"|'([^'\n]*)'|((?:[A-Za-z0-9_./+=]|-[A-Za-z0-9_.])[A-Za-z0-9_./+=:@-]*))$)/my;
const KEY_WORDS = new Set(['null', 'Null', 'NULL', 'true', 'True', 'TRUE', 'false', 'False', 'FALSE']);

// Character classes (ASCII; anything above is in none of them).
const LETTER = 1; // A-Z a-z
const KEY_CHAR = 2; // letters, digits, _ . / -   (a key's characters after its first letter)
const PLAIN_FIRST = 4; // letters, digits, _ . / + =   (a plain scalar's first character; or `-` before a PLAIN_AFTER_DASH)
const PLAIN_AFTER_DASH = 8; // letters, digits, _ .
const PLAIN_CHAR = 16; // letters, digits, _ . / + = : @ -   (a plain scalar's other characters)
const CLASS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  const letter = /[A-Za-z]/.test(ch);
  const alnum = letter || /[0-9]/.test(ch);
  CLASS[c] = (letter ? LETTER : 0)
    | (alnum || /[_./-]/.test(ch) ? KEY_CHAR : 0)
    | (alnum || /[_./+=]/.test(ch) ? PLAIN_FIRST : 0)
    | (alnum || /[_.]/.test(ch) ? PLAIN_AFTER_DASH : 0)
    | (alnum || /[_./+=:@-]/.test(ch) ? PLAIN_CHAR : 0);
}
const is = (c: number, cls: number): boolean => c < 128 && (CLASS[c] & cls) !== 0;

const SPACE = 32;
const HASH = 35;
const DASH = 45;
const COLON = 58;
const DQUOTE = 34;
const SQUOTE = 39;
const BACKSLASH = 92;

/** Thrown inside to leave the text to the other parsers. */
const OUT = Symbol('not simple YAML');

/** The content lines of one document: where each line's text starts (after its indent) and ends, and its indent. */
interface Lines {
  text: string;
  start: number[];
  end: number[];
  indent: number[];
  /** The next line to read. */
  i: number;
}

/** The documents of `text` (null for an empty one), or undefined when it is outside the subset. */
export function simpleParseDocuments(text: string): unknown[] | undefined {
  const docs: Lines[] = [{ text, start: [], end: [], indent: [], i: 0 }];
  let separators = 0;
  for (let pos = 0; pos <= text.length;) {
    let eol = text.indexOf('\n', pos);
    if (eol < 0) eol = text.length;
    let first = pos;
    while (first < eol && text.charCodeAt(first) === SPACE) first++;
    if (eol - pos === 3 && text.startsWith('---', pos)) {
      docs.push({ text, start: [], end: [], indent: [], i: 0 });
      separators++;
    } else if (first < eol && text.charCodeAt(first) !== HASH) { // not blank, not a comment line
      if (text.charCodeAt(eol - 1) === SPACE) return undefined; // trailing spaces
      const d = docs[docs.length - 1];
      d.start.push(first);
      d.end.push(eol);
      d.indent.push(first - pos);
    }
    pos = eol + 1;
  }
  // Before the first `---`, nothing but comments is not a document; after the last, nothing is
  // left to the other parsers (whether it is an empty document differs between them).
  if (separators > 0 && docs[0].start.length === 0) docs.shift();
  if (docs.length === 0 || docs[docs.length - 1].start.length === 0) return undefined;
  try {
    return docs.map((d) => {
      if (d.start.length === 0) return null;
      if (d.indent[0] !== 0) throw OUT;
      const v = block(d, 0);
      if (d.i !== d.start.length) throw OUT;
      return v;
    });
  } catch (err) {
    if (err === OUT) return undefined;
    throw err;
  }
}

/** Whether the text at [s, e) is a sequence entry: `- ...` or `-` alone. */
function isItem(t: string, s: number, e: number): boolean {
  return t.charCodeAt(s) === DASH && (e - s === 1 || t.charCodeAt(s + 1) === SPACE);
}

/** The block (mapping or sequence) whose lines start at `indent` (the current line's). */
function block(d: Lines, indent: number): unknown {
  return isItem(d.text, d.start[d.i], d.end[d.i]) ? sequence(d, indent, -1, 0) : mapping(d, indent, -1, 0);
}

/**
 * A mapping at `indent`. When `fs` >= 0, [fs, fe) is the text of its first entry, which followed
 * a sequence's `- ` on the line before the current one.
 */
function mapping(d: Lines, indent: number, fs: number, fe: number): Record<string, unknown> {
  const t = d.text;
  const out: Record<string, unknown> = {};
  for (;;) {
    let s = fs;
    let e = fe;
    fs = -1;
    if (s < 0) {
      if (d.i >= d.start.length || d.indent[d.i] < indent) return out;
      if (d.indent[d.i] > indent) throw OUT;
      s = d.start[d.i];
      e = d.end[d.i];
      d.i++;
    }
    // `key:` or `key: value` (the value as scalar() reads it), in one match.
    ENTRY.lastIndex = s;
    const m = ENTRY.exec(t);
    if (!m || ENTRY.lastIndex !== e) throw OUT;
    const key = m[1];
    if (((key.length === 4 || key.length === 5) && KEY_WORDS.has(key)) || Object.prototype.hasOwnProperty.call(out, key)) throw OUT;
    if (m[2] !== undefined) out[key] = m[2] === '{}' ? {} : [];
    else if (m[3] !== undefined) out[key] = m[3];
    else if (m[4] !== undefined) out[key] = m[4];
    else if (m[5] !== undefined) out[key] = plain(m[5]);
    else out[key] = nested(d, indent);
  }
}

/** The value of `key:` with nothing after it: a deeper block, a sequence at the key's indent, or null. */
function nested(d: Lines, indent: number): unknown {
  if (d.i < d.start.length) {
    const next = d.indent[d.i];
    if (next > indent) return block(d, next);
    if (next === indent && isItem(d.text, d.start[d.i], d.end[d.i])) return sequence(d, indent, -1, 0);
  }
  return null;
}

/**
 * A sequence at `indent`. When `fs` >= 0, [fs, fe) is its first line's text, which followed an
 * outer `- ` (on the line before the current one).
 */
function sequence(d: Lines, indent: number, fs: number, fe: number): unknown[] {
  const t = d.text;
  const out: unknown[] = [];
  for (;;) {
    let s = fs;
    let e = fe;
    fs = -1;
    if (s < 0) {
      if (d.i >= d.start.length || d.indent[d.i] < indent) return out;
      if (d.indent[d.i] > indent || !isItem(t, d.start[d.i], d.end[d.i])) {
        // A mapping that holds this sequence at its own indent goes on with its next key.
        if (d.indent[d.i] === indent) return out;
        throw OUT;
      }
      s = d.start[d.i];
      e = d.end[d.i];
      d.i++;
    }
    if (e - s === 1) { // `-` alone
      out.push(d.i < d.start.length && d.indent[d.i] > indent ? block(d, d.indent[d.i]) : null);
      continue;
    }
    const is0 = s + 2; // the item's text: [is0, e)
    if (is0 >= e || t.charCodeAt(is0) === SPACE) throw OUT; // `- ` alone (trailing space) or odd spacing
    if (isItem(t, is0, e)) {
      out.push(sequence(d, indent + 2, is0, e)); // `- - x`: a sequence in a sequence
      continue;
    }
    // `- key: value` starts a mapping whose further keys sit two columns in.
    let colon = is0;
    while (colon < e && t.charCodeAt(colon) !== COLON) colon++;
    const q = t.charCodeAt(is0);
    if (colon > is0 && colon < e && (colon === e - 1 || t.charCodeAt(colon + 1) === SPACE)
      && !((q === DQUOTE || q === SQUOTE) && quoted(t, is0, e) !== undefined)) {
      out.push(mapping(d, indent + 2, is0, e));
    } else {
      out.push(scalar(t, is0, e));
    }
  }
}

/**
 * A quoted string at [s, e) without escapes or quotes inside ("..." without " or \, '...'
 * without '): its content; undefined for anything else.
 */
function quoted(t: string, s: number, e: number): string | undefined {
  const q = t.charCodeAt(s);
  if (e - s < 2 || t.charCodeAt(e - 1) !== q) return undefined;
  for (let i = s + 1; i < e - 1; i++) {
    const c = t.charCodeAt(i);
    if (c === q || (q === DQUOTE && c === BACKSLASH)) return undefined;
  }
  return t.slice(s + 1, e - 1);
}

function scalar(t: string, s: number, e: number): unknown {
  const c0 = t.charCodeAt(s);
  if (e - s === 2) {
    const c1 = t.charCodeAt(s + 1);
    if (c0 === 123 && c1 === 125) return {}; // {}
    if (c0 === 91 && c1 === 93) return []; // []
  }
  if (c0 === DQUOTE || c0 === SQUOTE) {
    const v = quoted(t, s, e);
    if (v === undefined) throw OUT;
    return v;
  }
  // A plain scalar: a first character (or `-` and one), plain characters, not ending in `:`.
  let i = s + 1;
  if (c0 === DASH) {
    if (i >= e || !is(t.charCodeAt(i), PLAIN_AFTER_DASH)) throw OUT;
    i++;
  } else if (!is(c0, PLAIN_FIRST)) {
    throw OUT;
  }
  for (; i < e; i++) if (!is(t.charCodeAt(i), PLAIN_CHAR)) throw OUT;
  return plain(t.slice(s, e));
}

/** A plain scalar (its characters checked) as the core schema reads it; one ending in `:` is left to the others. */
function plain(v: string): unknown {
  const c0 = v.charCodeAt(0);
  if (v.charCodeAt(v.length - 1) === COLON) throw OUT;
  // Only null and boolean words and numbers resolve to other than the string: they start with
  // n N t T f F, a digit, + - or . (see core-scalars.ts).
  return is(c0, LETTER) && !NON_STRING_LETTERS.has(c0) ? v : resolvePlainScalar(v);
}

const NON_STRING_LETTERS = new Set([...'nNtTfF'].map((c) => c.charCodeAt(0)));
