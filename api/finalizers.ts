// Finalizer helpers. Adding and removing are idempotent; the store-writing variants re-read and
// retry on a resourceVersion conflict, so a controller can call them from any reconcile.

import type { ApiObject } from './types.js';
import { ConflictError, type ObjectRef, type Store } from './store/types.js';

export function hasFinalizer(obj: ApiObject, f: string): boolean {
  return obj.metadata.finalizers?.includes(f) ?? false;
}

/** A copy of obj with f added, or undefined when it is already there. */
export function withFinalizer<T extends ApiObject>(obj: T, f: string): T | undefined {
  if (hasFinalizer(obj, f)) return undefined;
  return { ...obj, metadata: { ...obj.metadata, finalizers: [...(obj.metadata.finalizers ?? []), f] } };
}

/** A copy of obj with f removed, or undefined when it is not there. */
export function withoutFinalizer<T extends ApiObject>(obj: T, f: string): T | undefined {
  if (!hasFinalizer(obj, f)) return undefined;
  return { ...obj, metadata: { ...obj.metadata, finalizers: (obj.metadata.finalizers ?? []).filter((x) => x !== f) } };
}

/**
 * Applies `change` to the stored object and writes it back with its resourceVersion, re-reading on
 * a conflict (up to `attempts` times). `change` returns undefined when nothing needs writing.
 * Returns the written object, the unchanged stored one, or undefined when the object is absent.
 */
export async function updateWithRetry<T extends ApiObject>(
  store: Store,
  ref: ObjectRef,
  change: (obj: T) => T | undefined,
  attempts = 5,
): Promise<T | undefined> {
  for (let i = 0; ; i++) {
    const cur = await store.tryGet<T>(ref);
    if (!cur) return undefined;
    const next = change(cur);
    if (!next) return cur;
    try {
      return await store.update<T>(next);
    } catch (err) {
      if (!(err instanceof ConflictError) || i + 1 >= attempts) throw err;
    }
  }
}

/** Adds finalizer f to the stored object (idempotent). */
export function ensureFinalizer<T extends ApiObject>(store: Store, ref: ObjectRef, f: string): Promise<T | undefined> {
  return updateWithRetry<T>(store, ref, (o) => withFinalizer(o, f));
}

/** Removes finalizer f from the stored object (idempotent). The last one gone deletes a terminating object. */
export function removeFinalizer<T extends ApiObject>(store: Store, ref: ObjectRef, f: string): Promise<T | undefined> {
  return updateWithRetry<T>(store, ref, (o) => withoutFinalizer(o, f));
}
