// Multi-document YAML parsing with the protections untrusted input needs: duplicate keys are
// errors (uniqueKeys), alias expansion is capped (a "billion laughs" document fails instead of
// eating memory), an alias without its anchor and a tag outside plain JSON-like YAML (`!custom`,
// `!!binary`, `!!set`) are errors with their line, and every document keeps its syntax tree so
// later errors can name a line.

import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import type { Document, LineCounter, Node } from 'yaml';
import { fastParseDocuments } from './fast-yaml.js';
import type { InputIssue } from './issues.js';

// The yaml package is required on first use (a synchronous require of its CommonJS build): plain
// YAML takes the fast path and never needs it, so a fresh `vcctl apply` of plain manifests does
// not load it.
let yamlPackage: typeof Yaml | undefined;
function yaml(): typeof Yaml {
  yamlPackage ??= createRequire(import.meta.url)('yaml') as typeof Yaml;
  return yamlPackage;
}

/** At most this many alias dereferences per document (the yaml package's own guard). */
export const MAX_ALIAS_COUNT = 100;

export interface ParsedDocument {
  file: string;
  /** 1-based position in the file. */
  document: number;
  /** The line the document starts on. */
  line: number;
  value: unknown;
  /** Finds the line of a JSON path in this document (the deepest part of it that exists). */
  lineOf(path: (string | number)[]): number | undefined;
}

/**
 * The documents of a file and what is wrong with them. Plain YAML takes the fast path
 * (fast-yaml.ts: the same values); the syntax tree that gives lines (`line`, `lineOf`) is then
 * built only when something asks for a line, i.e. when there is an error to report.
 */
export function parseDocuments(file: string, text: string): { documents: ParsedDocument[]; issues: InputIssue[] } {
  const fast = fastParseDocuments(text);
  if (!fast) return parseWithTree(file, text);
  let tree: Map<number, ParsedDocument> | undefined;
  const treeDoc = (document: number): ParsedDocument | undefined => {
    tree ??= new Map(parseWithTree(file, text).documents.map((d) => [d.document, d]));
    return tree.get(document);
  };
  const documents: ParsedDocument[] = [];
  fast.forEach((value, i) => {
    if (value === null) return; // empty, as parseWithTree skips it
    const document = i + 1;
    documents.push({
      file, document, value,
      get line() {
        return treeDoc(document)?.line ?? 1;
      },
      lineOf: (path) => treeDoc(document)?.lineOf(path),
    });
  });
  return { documents, issues: [] };
}

/** parseDocuments with the yaml package's syntax tree (every check, every line). */
function parseWithTree(file: string, text: string): { documents: ParsedDocument[]; issues: InputIssue[] } {
  const { LineCounter, parseAllDocuments } = yaml();
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  const documents: ParsedDocument[] = [];
  const issues: InputIssue[] = [];
  const list = Array.isArray(docs) ? docs : [];
  list.forEach((doc, i) => {
    const document = i + 1;
    const line = lc.linePos(firstContentOffset(doc)).line;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const message = e.code === 'DUPLICATE_KEY'
          ? `duplicate key ${JSON.stringify(keyAt(text, e.pos[0]))}: each key may appear once per map`
          : `invalid YAML: ${firstLine(e.message)}`;
        issues.push({ file, document, line: lc.linePos(e.pos[0]).line, message });
      }
      return;
    }
    if (doc.contents === null || (yaml().isScalar(doc.contents) && doc.contents.value === null)) return; // empty
    const structural = structureIssues(doc);
    if (structural.length > 0) {
      for (const s of structural) issues.push({ file, document, line: lc.linePos(s.offset).line, message: s.message });
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      const msg = /excessive alias count/i.test((err as Error).message)
        ? `too many alias references (more than ${MAX_ALIAS_COUNT}): refusing a possible "billion laughs" document`
        : `cannot read the document: ${(err as Error).message}`;
      issues.push({ file, document, line, message: msg });
      return;
    }
    documents.push({ file, document, line, value, lineOf: (path) => lineOfPath(doc, lc, path) });
  });
  return { documents, issues };
}

/** Tags that give the plain values a JSON object can hold (and `!`, the non-specific tag: a
 * string); any other explicit tag is refused. */
const PLAIN_TAGS = new Set(['!', ...['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`)]);

/**
 * What the package accepts but a manifest must not hold, in document order: an alias whose anchor
 * is not defined before it (the package would throw a bare ReferenceError), and an explicit tag
 * other than the plain ones (the package drops an unknown `!custom` with a warning and reads
 * `!!binary` / `!!set` as a Buffer / Set).
 */
function structureIssues(doc: Document): { offset: number; message: string }[] {
  const out: { offset: number; message: string }[] = [];
  const { isAlias, visit } = yaml();
  const anchors = new Set<string>();
  visit(doc, {
    Node(_key, node) {
      if (isAlias(node)) {
        if (!anchors.has(node.source)) {
          out.push({
            offset: node.range?.[0] ?? 0,
            message: `unresolved alias "*${node.source}": no anchor "&${node.source}" is defined before it in this document`,
          });
        }
        return;
      }
      if (node.anchor) anchors.add(node.anchor);
      if (node.tag !== undefined && !PLAIN_TAGS.has(node.tag)) {
        out.push({
          offset: node.range?.[0] ?? 0,
          message: `unsupported YAML tag "${shortTag(node.tag)}": manifests hold plain strings, numbers, booleans, null, maps and lists`,
        });
      }
    },
  });
  return out;
}

function shortTag(tag: string): string {
  return tag.startsWith('tag:yaml.org,2002:') ? `!!${tag.slice('tag:yaml.org,2002:'.length)}` : tag;
}

function firstContentOffset(doc: Document): number {
  const c = doc.contents as Node | null;
  return c?.range?.[0] ?? doc.range?.[0] ?? 0;
}

/** The key written at `offset` (up to the ':' that ends it), for messages. */
function keyAt(text: string, offset: number): string {
  const m = /^("(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*'|[^:\n]*?)\s*:/.exec(text.slice(offset, offset + 1024));
  const key = m ? m[1] : text.slice(offset).split('\n')[0];
  return key.replace(/^(["'])(.*)\1$/, '$2');
}

/** The package's messages end with a source excerpt on later lines; keep the first line. */
function firstLine(message: string): string {
  return message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
}

function lineOfPath(doc: Document, lc: LineCounter, path: (string | number)[]): number | undefined {
  const { isMap, isScalar, isSeq } = yaml();
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0];
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      if (!pair) break;
      offset = (pair.key as Node | null)?.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number' && node.items[seg]) {
      node = node.items[seg];
      offset = (node as Node).range?.[0] ?? offset;
    } else {
      break;
    }
  }
  return offset === undefined ? undefined : lc.linePos(offset).line;
}
