// The pure part of apply: from a manifest and the live object, what to write and what it is
// (created / configured / unchanged). Shared by `vcctl apply`, `vcctl diff` and the GitOps sync.

import fjp from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import type { ApiObject } from '../types.js';
import { formatPath, validateObject } from '../validation/validate-object.js';
import { canonicalJson, threeWayMerge } from './three-way-merge.js';

const { applyPatch, compare } = fjp;

/** Holds the manifest as last applied (canonical JSON), as kubectl's last-applied annotation. */
export const LAST_APPLIED_ANNOTATION = 'virtualinux.org/last-applied-configuration';
/** Who applied the object last (apply's fieldManager option), when given. */
export const APPLIED_BY_ANNOTATION = 'virtualinux.org/applied-by';

/** Metadata the store assigns; a manifest carrying them (e.g. from `get -o yaml`) does not set them. */
const SERVER_METADATA = ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp'] as const;

export type ApplyAction = 'created' | 'configured' | 'unchanged';

export interface ApplyPlan {
  action: ApplyAction;
  /** The object to write (create or update); for `unchanged`, the live object. */
  object: ApiObject;
  /** JSON patch from the live object (without status) to the object to write; empty when unchanged. */
  patch: Operation[];
  /** The resourceVersion the manifest itself demands (optimistic concurrency), if any. */
  requiredVersion?: string;
}

export class ApplyError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ApplyError';
  }
}

/** The manifest as apply records it: no status, no server-assigned metadata, no apply annotations. */
export function manifestForApply(desired: ApiObject): ApiObject {
  const out = structuredClone(desired);
  delete out.status;
  const meta = out.metadata;
  for (const k of SERVER_METADATA) delete meta[k];
  if (meta.annotations) {
    delete meta.annotations[LAST_APPLIED_ANNOTATION];
    delete meta.annotations[APPLIED_BY_ANNOTATION];
    if (Object.keys(meta.annotations).length === 0) delete meta.annotations;
  }
  return out;
}

/** The live object as apply compares it: without status and without the resourceVersion. */
function comparable(o: ApiObject): ApiObject {
  const out = structuredClone(o);
  delete out.status;
  delete out.metadata.resourceVersion;
  return out;
}

/**
 * Plans the apply of one manifest (validated, namespace filled) against the live object.
 * Throws ApplyError when the merged object is invalid (the live object holds fields the new
 * manifest conflicts with).
 */
export function planApply(desired: ApiObject, live: ApiObject | undefined, opts: { fieldManager?: string } = {}): ApplyPlan {
  const manifest = manifestForApply(desired);
  const requiredVersion = desired.metadata.resourceVersion;
  const annotate = (o: ApiObject): ApiObject => {
    o.metadata.annotations = { ...o.metadata.annotations, [LAST_APPLIED_ANNOTATION]: canonicalJson(manifest) };
    if (opts.fieldManager) o.metadata.annotations[APPLIED_BY_ANNOTATION] = opts.fieldManager;
    return o;
  };
  if (!live) {
    const object = withDefaults(annotate(structuredClone(manifest)));
    return { action: 'created', object, patch: compare({}, object), requiredVersion };
  }
  const lastText = live.metadata.annotations?.[LAST_APPLIED_ANNOTATION];
  let last: unknown;
  if (lastText) {
    try {
      last = JSON.parse(lastText);
    } catch {
      last = undefined; // a hand-edited, broken annotation: merge as if applied for the first time
    }
  }
  const base = comparable(live);
  const merged = withDefaults(annotate(threeWayMerge(last, manifest, base) as ApiObject));
  const patch = compare(base, merged);
  if (patch.length === 0) return { action: 'unchanged', object: live, patch, requiredVersion };
  const object = applyPatch(structuredClone(base), patch, false, false).newDocument;
  object.metadata.resourceVersion = requiredVersion ?? live.metadata.resourceVersion;
  if (live.status !== undefined) object.status = live.status;
  return { action: 'configured', object, patch, requiredVersion };
}

function withDefaults(o: ApiObject): ApiObject {
  const { object, issues } = validateObject(o);
  if (issues.length > 0) {
    const what = `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
    throw new ApplyError(
      `${what}: the merged object is invalid: ${issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; ')}`,
    );
  }
  return object;
}
