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
 * Applies `change` to the stored object and writes it back with its resourceVersion, computing
 * again over the stored one on a conflict (up to `attempts` writes). `change` returns undefined
 * when nothing needs writing. `from` is the object as last read (the cache's copy): the first try
 * is computed over it and the store does not read it again (WriteOptions.read); without it, the
 * object is read first. Returns the written object, the unchanged stored one, or undefined when
 * the object is absent.
 */
export async function updateWithRetry<T extends ApiObject>(
  store: Store,
  ref: ObjectRef,
  change: (obj: T) => T | undefined,
  attempts = 5,
  from?: T,
): Promise<T | undefined> {
  let cur = from ?? (await store.tryGet<T>(ref));
  for (let i = 0; ; i++) {
    if (!cur) return undefined;
    const next = change(cur);
    if (!next) return cur;
    try {
      return await store.update<T>(next, { read: [cur] });
    } catch (err) {
      if (!(err instanceof ConflictError) || i + 1 >= attempts) throw err;
      // The stored object the store refused the write over, when it read it; else read it.
      cur = (err.currentOf(ref) as T | undefined) ?? (await store.tryGet<T>(ref));
    }
  }
}

/** Adds finalizer f to the stored object (idempotent); `from`: as in updateWithRetry. */
export function ensureFinalizer<T extends ApiObject>(store: Store, ref: ObjectRef, f: string, from?: T): Promise<T | undefined> {
  return updateWithRetry<T>(store, ref, (o) => withFinalizer(o, f), 5, from);
}

/** Removes finalizer f from the stored object (idempotent). The last one gone deletes a terminating object. */
export function removeFinalizer<T extends ApiObject>(store: Store, ref: ObjectRef, f: string): Promise<T | undefined> {
  return updateWithRetry<T>(store, ref, (o) => withoutFinalizer(o, f));
}
