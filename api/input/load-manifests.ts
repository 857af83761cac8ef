// The entry point for everything that takes manifests from users (vcctl apply/diff/delete -f,
// the GitOps sync): read files, parse YAML, validate and default every object, and either return
// all of them or throw one ManifestError listing every problem. Nothing is written here, so an
// invalid document anywhere means the caller writes nothing.

import type { Readable } from 'node:stream';
import { applySizeIssues } from '../apply/plan-apply.js';
import { DEFAULT_NAMESPACE, resolveKind } from '../kinds.js';
import type { ApiObject } from '../types.js';
import { formatPath, validateObject } from '../validation/validate-object.js';
import { ManifestError, type InputIssue } from './issues.js';
import { parseDocuments, type ParsedDocument } from './parse-documents.js';
import { listFiles, readSource, type ReadOptions } from './read-sources.js';

export interface ManifestSource {
  file: string;
  document: number;
  line: number;
}

export interface Manifest {
  /** The object as written, with metadata.namespace filled in for namespaced kinds. */
  object: ApiObject;
  /** The same object with the schema's defaults applied. */
  defaulted: ApiObject;
  source: ManifestSource;
}

export interface LoadOptions extends ReadOptions {
  /** Namespace for namespaced objects that name none (default "default"). */
  namespace?: string;
  /** The namespace was given explicitly (-n): an object naming another namespace is an error. */
  enforceNamespace?: boolean;
}

/** Reads, parses and validates every manifest under `paths`. Throws ManifestError listing all issues. */
export async function loadManifests(paths: string[], opts: LoadOptions = {}): Promise<Manifest[]> {
  const { files, issues } = await listFiles(paths, opts);
  const docs: ParsedDocument[] = [];
  for (const f of files) {
    try {
      const src = await readSource(f, opts);
      const parsed = parseDocuments(src.file, src.text);
      issues.push(...parsed.issues);
      docs.push(...parsed.documents);
    } catch (err) {
      if (err instanceof ManifestError) issues.push(...err.issues);
      else throw err;
    }
  }
  const { manifests, issues: more } = validateDocuments(docs, opts);
  issues.push(...more);
  if (issues.length > 0) throw new ManifestError(issues);
  return manifests;
}

/** Parses and validates manifests given as text (tests, the GitOps sync reading blobs from git). */
export function loadManifestText(file: string, text: string, opts: LoadOptions = {}): Manifest[] {
  const parsed = parseDocuments(file, text);
  const { manifests, issues } = validateDocuments(parsed.documents, opts);
  const all = [...parsed.issues, ...issues];
  if (all.length > 0) throw new ManifestError(all);
  return manifests;
}

function validateDocuments(docs: ParsedDocument[], opts: LoadOptions): { manifests: Manifest[]; issues: InputIssue[] } {
  const manifests: Manifest[] = [];
  const issues: InputIssue[] = [];
  const seen = new Map<string, ManifestSource>();
  const namespace = opts.namespace ?? DEFAULT_NAMESPACE;
  for (const doc of docs) {
    const at = (path: (string | number)[]) => ({ file: doc.file, document: doc.document, line: doc.lineOf(path) ?? doc.line });
    for (const [value, prefix] of expandList(doc.value)) {
      const obj = value as ApiObject;
      const info = obj && typeof obj === 'object' && typeof obj.kind === 'string' ? resolveKind(obj.kind) : undefined;
      const meta = obj && typeof obj === 'object' && obj.metadata && typeof obj.metadata === 'object' ? obj.metadata : undefined;
      if (meta && info?.namespaced) {
        if (meta.namespace === undefined) meta.namespace = namespace;
        else if (opts.enforceNamespace && meta.namespace !== namespace) {
          issues.push({
            ...at([...prefix, 'metadata', 'namespace']),
            path: formatPath([...prefix, 'metadata', 'namespace']),
            message: `"${String(meta.namespace)}" does not match the namespace "${namespace}" given with -n`,
          });
          continue;
        }
      }
      // Status is written by controllers only; apply ignores it (as kubectl does for CRDs with
      // a status subresource), but it is still validated so a typo does not pass silently.
      const result = validateObject(obj);
      if (result.issues.length === 0) result.issues.push(...applySizeIssues(obj));
      if (result.issues.length > 0) {
        const found = result.issues.map((i) => {
          const path = [...prefix, ...i.path];
          return { ...at(path), path: formatPath(path) || undefined, message: i.message };
        });
        issues.push(...found.sort((a, b) => a.line - b.line)); // in reading order (sort is stable)
        continue;
      }
      // The line is looked up only when read (an error message): on the fast path it needs the tree.
      const source: ManifestSource = {
        file: doc.file, document: doc.document,
        get line() { return doc.lineOf(prefix) ?? doc.line; },
      };
      const id = `${obj.kind}/${meta?.namespace ?? ''}/${meta?.name ?? ''}`;
      const first = seen.get(id);
      if (first) {
        issues.push({
          ...source,
          path: formatPath([...prefix, 'metadata', 'name']),
          message: `${obj.kind} ${meta?.namespace ? `${meta.namespace}/` : ''}${meta?.name} is also defined in ${first.file} document ${first.document}`,
        });
        continue;
      }
      seen.set(id, source);
      manifests.push({ object: obj, defaulted: result.object, source });
    }
  }
  return { manifests, issues };
}

/** A `kind: List` (as `vcctl get -o yaml` prints) stands for its items. */
function expandList(value: unknown): [unknown, (string | number)[]][] {
  const v = value as { apiVersion?: unknown; kind?: unknown; items?: unknown };
  if (v && typeof v === 'object' && v.kind === 'List' && v.apiVersion === 'v1' && Array.isArray(v.items)) {
    return v.items.map((item, i) => [item, ['items', i]]);
  }
  return [[value, []]];
}
