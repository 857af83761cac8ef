// Writing an object's status over the latest stored version, said once.
//
// A status write carries the resourceVersion it was computed from; when another writer got there
// first (a Conflict), the status is computed again over a fresh read and written again, so what
// this writer records (a condition, what an action did) is not lost, and what the other wrote
// (fields this writer does not set) is kept.

import { ConflictError, type ObjectRef, type Store } from './store/types.js';
import type { ApiObject } from './types.js';

/**
 * Writes `next(current)` as the status of `obj` (as read from the store or the cache, not changed
 * since: its metadata and spec are written as they are), re-reading and recomputing on a Conflict (up to
 * `attempts` writes). `next` returns undefined when nothing needs writing; a status equal to the
 * stored one is not written. Returns the object as written, or as stored when nothing was
 * written, or undefined when it is gone.
 */
export async function writeStatusOver<T extends ApiObject>(
  store: Store,
  obj: T,
  next: (current: T) => T['status'] | undefined,
  attempts = 5,
): Promise<T | undefined> {
  let current: T | undefined = obj;
  const ref: ObjectRef = { kind: obj.kind, name: obj.metadata.name, ...(obj.metadata.namespace ? { namespace: obj.metadata.namespace } : {}) };
  for (let attempt = 1; current; attempt++) {
    const status = next(current);
    if (status === undefined || JSON.stringify(status) === JSON.stringify(current.status)) return current;
    try {
      // `current` is as read (the caller's cached copy, or the store's): the store need not read
      // it again before writing (WriteOptions.read).
      return await store.updateStatus<T>({ ...current, status }, { read: [current] });
    } catch (err) {
      if (!(err instanceof ConflictError) || attempt >= attempts) throw err;
      // The store's own read that refused the write, when it made one; else a read of our own.
      current = (err.currentOf(ref) as T | undefined) ?? (await store.tryGet<T>(ref));
    }
  }
  return undefined;
}
