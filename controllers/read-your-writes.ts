// Read-your-writes over the shared cache, for a controller that writes objects of one kind and
// reads them back in its next step (the storage controller: a VC's Volumes, pass after pass).
// Reading them from the store each time cost a request per object per step (hack/bench-scale);
// the cache serves them once it holds every version this controller wrote or read under the key.
//
// Contract: `track(store, key)` is the store to write through for `key` (e.g. a VC's uid): every
// object of `kind` a create/update/updateStatus/batch returns raises the key's revision to its
// resourceVersion; a delete raises it to the store's revision after the delete (one request). `saw(key,
// objects)` after a read from the store raises it to their resourceVersions. `fresh(cache, key)`
// says whether the cache's informer of `kind` is at or past the key's revision, waiting up to
// waitMs for it (the watch events of a write usually follow within milliseconds). A key never
// written nor read here is not fresh: its first read goes to the store. Only writes made through
// `track` are known: objects of `kind` written by another controller or process under the same
// key are not waited for (use it where this controller is their only writer).

import type { ApiObject } from '../api/types.js';
import type { Store } from '../api/store/types.js';
import { cacheState } from './change-filter.js';
import type { CacheReader } from './types.js';

const WRITES = new Set(['create', 'update', 'updateStatus', 'batch']);

export class WrittenRevisions {
  private readonly at = new Map<string, number>();

  constructor(readonly kind: string, private readonly waitMs = 200) {}

  /** `store`, noting the revisions of the `kind` objects written through it under `key`. */
  track(store: Store, key: string): Store {
    const note = (o: unknown): void => {
      const obj = o as ApiObject | undefined;
      if (obj?.kind === this.kind && obj.metadata?.resourceVersion !== undefined) this.raise(key, Number(obj.metadata.resourceVersion));
    };
    return new Proxy(store, {
      get: (target, prop) => {
        const v: unknown = Reflect.get(target, prop, target);
        if (typeof v !== 'function') return v;
        const fn = (v as (...a: unknown[]) => Promise<unknown>).bind(target);
        if (prop === 'delete') {
          return async (...args: unknown[]) => {
            try {
              return await fn(...args);
            } finally {
              this.raise(key, await target.revision());
            }
          };
        }
        if (typeof prop !== 'string' || !WRITES.has(prop)) return fn;
        return async (...args: unknown[]) => {
          const r = await fn(...args);
          if (Array.isArray(r)) r.forEach(note);
          else note(r);
          return r;
        };
      },
    });
  }

  /** After a read of `key`'s objects from the store: the cache must hold at least these versions. */
  saw(key: string, objects: readonly ApiObject[]): void {
    this.raise(key, Math.max(0, ...objects.map((o) => Number(o.metadata.resourceVersion ?? 0))));
  }

  /** Forgets a key (its owner is gone). */
  forget(key: string): void {
    this.at.delete(key);
  }

  /** Whether `cache` holds every version of `key`'s objects known here (waiting up to waitMs). */
  async fresh(cache: CacheReader, key: string): Promise<boolean> {
    const want = this.at.get(key);
    if (want === undefined) return false;
    const rev = () => {
      const s = cacheState(cache, [this.kind]);
      return s === undefined ? undefined : Number(s);
    };
    const deadline = performance.now() + this.waitMs;
    for (;;) {
      const r = rev();
      if (r === undefined) return false;
      if (r >= want) return true;
      if (performance.now() >= deadline) return false;
      await new Promise((res) => setTimeout(res, 5));
    }
  }

  private raise(key: string, rv: number): void {
    if (Number.isFinite(rv) && rv > (this.at.get(key) ?? -1)) this.at.set(key, rv);
  }
}
