// The object semantics both backends share (see the header of types.ts): what a create, update,
// updateStatus or delete turns the stored object into, and which error it fails with. A backend
// reads the stored object, calls planWrite, and commits the plan atomically with a check that the
// stored object did not change in between (SQLite: one IMMEDIATE transaction; etcd: a txn that
// compares the key's modRevision). Keeping this in one pure function is what makes the two
// backends agree.

import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { ApiObject, ObjectMeta } from '../types.js';
import { resolveKind } from '../kinds.js';
import {
  AlreadyExistsError, ConflictError, NotFoundError, StoreError,
  type BatchOp, type ObjectRef, type WatchEventType,
} from './types.js';

/**
 * What to commit for one operation. `object` never carries a resourceVersion for put/delete: the
 * backend sets it to the revision of the commit. `none` means the operation changes nothing (an
 * update identical to the stored object, a repeated delete of a terminating object): nothing is
 * written and `object` is the stored object as it is.
 */
export type WritePlan =
  | {
    action: 'put'; event: 'ADDED' | 'MODIFIED'; object: ApiObject;
    /** encodeObject(object), when planWrite wrote it already (a create): backends store this text. */
    encoded?: string;
  }
  | { action: 'delete'; object: ApiObject }
  | { action: 'none'; object: ApiObject };

export function eventTypeOf(plan: WritePlan): WatchEventType | undefined {
  if (plan.action === 'put') return plan.event;
  if (plan.action === 'delete') return 'DELETED';
  return undefined;
}

/** The object a batch operation targets. Validates kind, name and scope. */
export function refOfOp(op: BatchOp): ObjectRef {
  if (op.op === 'delete') return checkRef(op.ref);
  const o = op.object as ApiObject | undefined;
  if (!o || typeof o !== 'object' || !o.metadata || typeof o.metadata !== 'object') {
    throw new StoreError(`${op.op}: the object has no metadata; give at least kind and metadata.name`);
  }
  return checkRef({ kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace });
}

/**
 * Checks that a ref names an object: kind and name are set, and the namespace matches the kind's
 * scope when the kind is registered in api/kinds.ts. Unregistered kinds (tests, extensions) are
 * namespaced exactly when a namespace is given.
 */
export function checkRef(ref: ObjectRef): ObjectRef {
  if (!ref.kind || typeof ref.kind !== 'string') throw new StoreError('object reference without kind');
  if (!ref.name || typeof ref.name !== 'string') {
    throw new StoreError(`${ref.kind} without metadata.name: give the object a name`);
  }
  if (ref.name.includes('/') || (ref.namespace !== undefined && ref.namespace.includes('/'))) {
    throw new StoreError(`${describeRef(ref)}: names and namespaces must not contain "/"`);
  }
  const info = resolveKind(ref.kind);
  if (info && info.kind !== ref.kind) {
    throw new StoreError(`kind "${ref.kind}" must be spelled "${info.kind}" in stored objects`);
  }
  if (info?.namespaced && !ref.namespace) {
    throw new StoreError(`${describeRef(ref)}: ${ref.kind} is namespaced; set metadata.namespace`);
  }
  if (info && !info.namespaced && ref.namespace) {
    throw new StoreError(`${describeRef(ref)}: ${ref.kind} is cluster-scoped; remove metadata.namespace`);
  }
  return ref.namespace ? ref : { kind: ref.kind, name: ref.name };
}

/** `Kind ns/name` or `Kind name`, for messages. */
export function describeRef(ref: ObjectRef): string {
  return `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
}

/** A stable identity of a ref, for duplicate detection in batches. */
export function refId(ref: ObjectRef): string {
  return `${ref.kind}\u0000${ref.namespace ?? ''}\u0000${ref.name}`;
}

/**
 * Rejects a batch that touches one object twice: etcd cannot write one key twice in a txn, and
 * "all operations see the state before the batch" is only unambiguous with distinct objects.
 */
export function checkBatch(ops: readonly BatchOp[]): ObjectRef[] {
  const seen = new Set<string>();
  return ops.map((op) => {
    const ref = refOfOp(op);
    const id = refId(ref);
    if (seen.has(id)) {
      throw new StoreError(`batch: ${describeRef(ref)} appears twice; put one operation per object in a batch`);
    }
    seen.add(id);
    return ref;
  });
}

/** RFC 3339 at second precision, as Kubernetes writes timestamps. */
export function nowTimestamp(now: number = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== lastStamp.second) lastStamp = { second, text: new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z') };
  return lastStamp.text; // a batch stamps all its objects with one `now`
}
let lastStamp = { second: Number.NaN, text: '' };

/**
 * Computes the plan for one operation against the stored object (undefined when absent; its
 * metadata.resourceVersion must be set). Throws AlreadyExistsError, NotFoundError, ConflictError.
 */
export function planWrite(op: BatchOp, stored: ApiObject | undefined, now: number = Date.now()): WritePlan {
  const ref = refOfOp(op);
  if (op.op === 'create') {
    if (stored) throw new AlreadyExistsError(`${describeRef(ref)} already exists`);
    // The object's JSON text, written once: it is what the backend stores, and parsed back it is
    // the plan's own deep copy (nothing returned shares the caller's object), the same copy as
    // clone() makes (undefined values dropped).
    const meta: ObjectMeta = { ...op.object.metadata, uid: randomUUID(), creationTimestamp: nowTimestamp(now), generation: 1 };
    delete meta.resourceVersion;
    delete meta.deletionTimestamp;
    const encoded = JSON.stringify({ ...op.object, metadata: meta });
    return { action: 'put', event: 'ADDED', object: JSON.parse(encoded) as ApiObject, encoded };
  }
  if (!stored) throw new NotFoundError(`${describeRef(ref)} not found`);
  const expected = op.op === 'delete' ? op.resourceVersion : op.object.metadata.resourceVersion;
  if (expected !== undefined && expected !== '' && expected !== stored.metadata.resourceVersion) {
    const err = new ConflictError(
      `${describeRef(ref)} was modified (resourceVersion ${stored.metadata.resourceVersion}, ` +
        `the write expected ${expected}): read it again and retry`,
    );
    err.current = stored;
    throw err;
  }
  const base = withoutVersion(stored);
  switch (op.op) {
    case 'update': {
      const o = clone(op.object);
      const specChanged = !isDeepStrictEqual(o.spec, base.spec);
      const meta: ObjectMeta = dropUndefined({
        ...o.metadata,
        uid: base.metadata.uid,
        creationTimestamp: base.metadata.creationTimestamp,
        deletionTimestamp: base.metadata.deletionTimestamp,
        generation: (base.metadata.generation ?? 1) + (specChanged ? 1 : 0),
      });
      delete meta.resourceVersion;
      const next: ApiObject = dropUndefined({ apiVersion: o.apiVersion, kind: o.kind, metadata: meta, spec: o.spec, status: base.status });
      if (meta.deletionTimestamp && !(meta.finalizers && meta.finalizers.length > 0)) {
        return { action: 'delete', object: next };
      }
      if (isDeepStrictEqual(next, base)) return { action: 'none', object: stored };
      return { action: 'put', event: 'MODIFIED', object: next };
    }
    case 'updateStatus': {
      // Only the status is copied and compared: the rest is the stored object's (the whole object
      // was copied and compared per status write: hack/bench-scale's CPU profile).
      const status = clone(op.object.status);
      if (isDeepStrictEqual(status, base.status)) return { action: 'none', object: stored };
      return { action: 'put', event: 'MODIFIED', object: dropUndefined({ ...base, status }) };
    }
    case 'delete': {
      if (base.metadata.finalizers && base.metadata.finalizers.length > 0) {
        if (base.metadata.deletionTimestamp) return { action: 'none', object: stored };
        const next = { ...base, metadata: { ...base.metadata, deletionTimestamp: nowTimestamp(now) } };
        return { action: 'put', event: 'MODIFIED', object: next };
      }
      return { action: 'delete', object: base };
    }
  }
}

/** The object as a backend stores it: everything but resourceVersion (that is the store's revision). */
export function encodeObject(obj: ApiObject): string {
  return JSON.stringify(withoutVersion(obj));
}

/** What a backend stores for a put plan: its encoded text when planWrite made it, else encodeObject. */
export function encodedPlan(plan: Extract<WritePlan, { action: 'put' }>): string {
  return plan.encoded ?? encodeObject(plan.object);
}

/**
 * Parses a stored value and stamps the revision it was written at as resourceVersion. A value that
 * is not a JSON object with a metadata object (bytes written around vcctl, e.g. `etcdctl put`)
 * throws an UndecodableError naming `key`.
 */
export function decodeObject<T extends ApiObject = ApiObject>(value: string, revision: number, key = 'the stored value'): T {
  let o: T;
  try {
    o = JSON.parse(value) as T;
  } catch (err) {
    throw new UndecodableError(`${key} at revision ${revision} is not JSON (${(err as Error).message}); fix or delete it`, { cause: err });
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o) || typeof o.metadata !== 'object' || o.metadata === null) {
    throw new UndecodableError(`${key} at revision ${revision} is not an object with metadata; fix or delete it`);
  }
  o.metadata.resourceVersion = String(revision);
  return o;
}

/** A stored value that is not an object at all: lists and watches skip it and report it. */
export class UndecodableError extends StoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UndecodableError';
  }
}

/** A copy of obj whose metadata.resourceVersion is the given revision. */
export function withVersion<T extends ApiObject>(obj: ApiObject, revision: number): T {
  return { ...obj, metadata: { ...obj.metadata, resourceVersion: String(revision) } } as T;
}

function withoutVersion(obj: ApiObject): ApiObject {
  if (obj.metadata.resourceVersion === undefined) return obj;
  const metadata = { ...obj.metadata };
  delete metadata.resourceVersion;
  return { ...obj, metadata };
}

function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

function dropUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}
