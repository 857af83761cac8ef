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

import { resolvePlainScalar } from './core-scalars.js';

const KEY = /^[A-Za-z][A-Za-z0-9_./-]*$/;
const KEY_WORDS = new Set(['null', 'Null', 'NULL', 'true', 'True', 'TRUE', 'false', 'False', 'FALSE']);
const PLAIN = /^(?:[A-Za-z0-9_./+=]|-[A-Za-z0-9_.])[A-Za-z0-9_./+=:@-]*$/;
const DOUBLE = /^"[^"\\]*"$/;
const SINGLE = /^'[^']*'$/;

/** Thrown inside to leave the text to the other parsers. */
const OUT = Symbol('not simple YAML');

interface Line { indent: number; text: string }

/** The documents of `text` (null for an empty one), or undefined when it is outside the subset. */
export function simpleParseDocuments(text: string): unknown[] | undefined {
  const segments: Line[][] = [[]];
  let separators = 0;
  for (const raw of text.split('\n')) {
    if (raw === '---') {
      segments.push([]);
      separators++;
      continue;
    }
    let indent = 0;
    while (raw.charCodeAt(indent) === 32) indent++;
    if (indent === raw.length || raw.charCodeAt(indent) === 35) continue; // blank or a comment line
    if (raw.charCodeAt(raw.length - 1) === 32) return undefined; // trailing spaces
    segments[segments.length - 1].push({ indent, text: raw.slice(indent) });
  }
  // Before the first `---`, nothing but comments is not a document; after the last, nothing is
  // left to the other parsers (whether it is an empty document differs between them).
  if (separators > 0 && segments[0].length === 0) segments.shift();
  if (segments.length === 0 || segments[segments.length - 1].length === 0) return undefined;
  try {
    return segments.map((lines) => {
      if (lines.length === 0) return null;
      const pos = { i: 0 };
      const v = block(lines, pos, lines[0].indent);
      if (pos.i !== lines.length || lines[0].indent !== 0) throw OUT;
      return v;
    });
  } catch (err) {
    if (err === OUT) return undefined;
    throw err;
  }
}

/** The block (mapping or sequence) whose lines start at `indent`. */
function block(lines: Line[], pos: { i: number }, indent: number): unknown {
  return lines[pos.i].text.startsWith('- ') || lines[pos.i].text === '-' ? sequence(lines, pos, indent) : mapping(lines, pos, indent, undefined);
}

/**
 * A mapping at `indent`. `first`, when given, is the text of its first entry, which followed a
 * sequence's `- ` (so the lines array does not hold it).
 */
function mapping(lines: Line[], pos: { i: number }, indent: number, first: string | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let text = first;
  for (;;) {
    if (text === undefined) {
      const line = lines[pos.i];
      if (!line || line.indent < indent) return out;
      if (line.indent > indent) throw OUT;
      text = line.text;
      pos.i++;
    }
    const colon = text.indexOf(':');
    if (colon <= 0) throw OUT;
    const key = text.slice(0, colon);
    if (!KEY.test(key) || KEY_WORDS.has(key) || Object.prototype.hasOwnProperty.call(out, key)) throw OUT;
    const rest = text.slice(colon + 1);
    if (rest === '') {
      out[key] = nested(lines, pos, indent);
    } else {
      if (rest.charCodeAt(0) !== 32) throw OUT;
      out[key] = scalar(rest.slice(1));
    }
    text = undefined;
  }
}

/** The value of `key:` with nothing after it: a deeper block, a sequence at the key's indent, or null. */
function nested(lines: Line[], pos: { i: number }, indent: number): unknown {
  const next = lines[pos.i];
  if (next && next.indent > indent) return block(lines, pos, next.indent);
  if (next && next.indent === indent && (next.text.startsWith('- ') || next.text === '-')) return sequence(lines, pos, indent);
  return null;
}

/** A sequence at `indent`; `first`, when given, is its first line's text, which followed an outer `- `. */
function sequence(lines: Line[], pos: { i: number }, indent: number, first?: string): unknown[] {
  const out: unknown[] = [];
  let text = first;
  for (;;) {
    if (text === undefined) {
      const line = lines[pos.i];
      if (!line || line.indent < indent) return out;
      if (line.indent > indent || !(line.text.startsWith('- ') || line.text === '-')) {
        // A mapping that holds this sequence at its own indent goes on with its next key.
        if (line.indent === indent) return out;
        throw OUT;
      }
      text = line.text;
      pos.i++;
    }
    if (text === '-') {
      const next = lines[pos.i];
      out.push(next && next.indent > indent ? block(lines, pos, next.indent) : null);
      text = undefined;
      continue;
    }
    const item = text.slice(2);
    text = undefined;
    if (item.startsWith(' ')) throw OUT; // odd spacing
    if (item.startsWith('- ') || item === '-') {
      out.push(sequence(lines, pos, indent + 2, item)); // `- - x`: a sequence in a sequence
      continue;
    }
    // `- key: value` starts a mapping whose further keys sit two columns in.
    const colon = item.indexOf(':');
    if (colon > 0 && (colon === item.length - 1 || item.charCodeAt(colon + 1) === 32) && !DOUBLE.test(item) && !SINGLE.test(item)) {
      out.push(mapping(lines, pos, indent + 2, item));
    } else {
      out.push(scalar(item));
    }
  }
}

function scalar(s: string): unknown {
  if (s === '{}') return {};
  if (s === '[]') return [];
  if (DOUBLE.test(s) || SINGLE.test(s)) return s.slice(1, -1);
  if (!PLAIN.test(s) || s.endsWith(':')) throw OUT;
  return resolvePlainScalar(s);
}
