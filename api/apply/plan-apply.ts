// The pure part of apply: from a manifest and the live object, what to write and what it is
// (created / configured / unchanged). Shared by `vcctl apply`, `vcctl diff` and the GitOps sync.

import fjp from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import type { ApiObject } from '../types.js';
import { formatPath, validateObject, type ValidationIssue } from '../validation/validate-object.js';
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
  return structuredClone(stripped(desired));
}

/**
 * manifestForApply without the deep copy: new top-level, metadata and annotations objects, the
 * rest shared with `o` (read it, never change it). The keys keep their order.
 */
function stripped(o: ApiObject): ApiObject {
  const meta = { ...o.metadata };
  for (const k of SERVER_METADATA) delete meta[k];
  if (meta.annotations) {
    const { [LAST_APPLIED_ANNOTATION]: _last, [APPLIED_BY_ANNOTATION]: _by, ...own } = meta.annotations;
    if (Object.keys(own).length > 0) meta.annotations = own;
    else delete meta.annotations;
  }
  const out = { ...o, metadata: meta };
  delete out.status;
  return out;
}

/** The most a manifest's own annotations may hold together (keys and values, UTF-8 bytes), as
 * Kubernetes caps an object's annotations: apply records the whole manifest, these annotations
 * included, once more in LAST_APPLIED_ANNOTATION. */
export const MAX_ANNOTATION_BYTES = 128 * 1024;
/** The longest annotation value the schema allows (metadata.annotations.*: maxLength). */
const MAX_ANNOTATION_VALUE = 262144;

/**
 * What makes a manifest too large to apply, named against the user's own fields: their
 * annotations together over MAX_ANNOTATION_BYTES, or the manifest as apply records it in
 * LAST_APPLIED_ANNOTATION over the longest annotation value (otherwise the merged object fails
 * validation on an annotation the user never wrote).
 */
export function applySizeIssues(desired: ApiObject): ValidationIssue[] {
  // Its JSON has the length of the canonical JSON apply records (the same keys, in another order).
  const manifest = stripped(desired);
  return sizeIssues(manifest, JSON.stringify(manifest).length);
}

/** applySizeIssues of a manifest already stripped as manifestForApply strips, and the length
 * of its recorded JSON. */
function sizeIssues(manifest: ApiObject, recorded: number): ValidationIssue[] {
  const annotations = manifest.metadata.annotations ?? {};
  let bytes = 0;
  for (const [k, v] of Object.entries(annotations)) bytes += Buffer.byteLength(k) + Buffer.byteLength(String(v));
  if (bytes > MAX_ANNOTATION_BYTES) {
    return [{
      path: ['metadata', 'annotations'],
      message: `the annotations hold ${bytes} bytes together, at most ${MAX_ANNOTATION_BYTES} (apply keeps a copy of the manifest in ${LAST_APPLIED_ANNOTATION}); keep large data elsewhere`,
    }];
  }
  if (recorded > MAX_ANNOTATION_VALUE) {
    return [{
      path: [],
      message: `the manifest is ${recorded} characters as apply records it in ${LAST_APPLIED_ANNOTATION}, at most ${MAX_ANNOTATION_VALUE}; make it smaller`,
    }];
  }
  return [];
}

/** The live object as apply compares it: without status and without the resourceVersion. */
function comparable(o: ApiObject): ApiObject {
  const out = structuredClone(o);
  delete out.status;
  delete out.metadata.resourceVersion;
  return out;
}

export interface PlanApplyOptions {
  /** Recorded in the APPLIED_BY_ANNOTATION annotation. */
  fieldManager?: string;
  /**
   * `desired` as validateObject validated and defaulted it (api/input's Manifest.defaulted), when
   * the caller has it: a create then takes it (stripped and annotated; the created object shares
   * its nested values) instead of copying, defaulting and validating the manifest once more. Only
   * the apply annotations are new in it, and they fit (checked here).
   */
  defaulted?: ApiObject;
}

/**
 * Plans the apply of one manifest (validated, namespace filled) against the live object.
 * Throws ApplyError when the merged object is invalid (the live object holds fields the new
 * manifest conflicts with).
 */
export function planApply(desired: ApiObject, live: ApiObject | undefined, opts: PlanApplyOptions = {}): ApplyPlan {
  const manifest = stripped(desired); // read only: the merge copies what it takes from it
  const recorded = canonicalJson(manifest);
  const tooLarge = sizeIssues(manifest, recorded.length);
  if (tooLarge.length > 0) throw new ApplyError(`${describe(desired)}: ${tooLarge.map((i) => `${i.path.length ? `${formatPath(i.path)}: ` : ''}${i.message}`).join('; ')}`);
  const requiredVersion = desired.metadata.resourceVersion;
  const annotate = (o: ApiObject): ApiObject => {
    o.metadata.annotations = { ...o.metadata.annotations, [LAST_APPLIED_ANNOTATION]: recorded };
    if (opts.fieldManager) o.metadata.annotations[APPLIED_BY_ANNOTATION] = opts.fieldManager;
    return o;
  };
  if (!live) {
    const object = opts.defaulted && (opts.fieldManager ?? '').length <= MAX_ANNOTATION_VALUE
      ? annotate(stripped(opts.defaulted))
      : withDefaults(annotate(structuredClone(manifest)), true); // our own copy: defaulted in place
    let patch: Operation[] | undefined;
    return {
      action: 'created', object, requiredVersion,
      get patch() { return (patch ??= compare({}, object)); }, // computed when read (rarely)
    };
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

/** `o` validated and defaulted (a copy, or `o` itself when `inPlace`: only for an object shared with nothing). */
function withDefaults(o: ApiObject, inPlace = false): ApiObject {
  const { object, issues } = validateObject(o, { inPlace });
  if (issues.length > 0) {
    throw new ApplyError(
      `${describe(o)}: the merged object is invalid: ${issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; ')}`,
    );
  }
  return object;
}

function describe(o: ApiObject): string {
  return `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
}
