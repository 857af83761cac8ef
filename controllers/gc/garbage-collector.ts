// The garbage collector: one controller per kind, each looking at its objects in two roles.
//
// As a dependent (it has ownerReferences):
// - a reference whose owner is gone (absent, or present with another uid) dangles; the store is
//   read to confirm before anything is deleted, since the cache may lag a freshly created owner;
// - all references dangle -> the dependent is deleted (its own finalizers then run);
// - some dangle -> the dangling ones are removed;
// - an owner is being deleted in the foreground -> the dependent is deleted.
// As an owner being deleted (deletionTimestamp set):
// - `orphan` finalizer: its uid is removed from every dependent's ownerReferences, then the
//   finalizer is removed;
// - `foregroundDeletion` finalizer: its dependents are deleted; once the store holds none, the
//   finalizer is removed and the owner goes.
// Changes of any kind requeue the owners they reference and the dependents that reference them.

import type { ApiObject } from '../../api/types.js';
import { NotFoundError, type ObjectRef, type Store } from '../../api/store/types.js';
import type { SharedCache } from '../cache.js';
import type { ControllerSpec, ReconcileContext, ReconcileResult } from '../types.js';
import { hasFinalizer, removeFinalizer, updateWithRetry } from '../../api/finalizers.js';
import { mapOnChange } from '../change-filter.js';
import { ownerRefTarget } from './owner-references.js';
import { FOREGROUND_FINALIZER, GC_KINDS, ORPHAN_FINALIZER, liveDependents } from './propagation.js';

export const GC_NAME = 'garbage-collector';

function refOf(o: ApiObject): ObjectRef {
  return o.metadata.namespace
    ? { kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace }
    : { kind: o.kind, name: o.metadata.name };
}

/** How many owner uids GoneOwners remembers (the oldest are forgotten first). */
const GONE_OWNERS_MAX = 10_000;

/**
 * Owner uids the store confirmed gone. A uid is never used again (an object made anew under the
 * same name has another), so once the store said an owner with that uid is gone, its other
 * dependents need not ask again: a VirtualCluster deleted in the background left its 4 VMs, its
 * volumes and Migrations each reading it from the store before being deleted (hack/bench-scale,
 * 3,000 VMs: the collector's store round trips paced the delete's last phase).
 */
export class GoneOwners {
  private readonly uids = new Set<string>();
  constructor(private readonly max = GONE_OWNERS_MAX) {}

  has(uid: string): boolean {
    return this.uids.has(uid);
  }

  add(uid: string): void {
    if (this.uids.has(uid)) return;
    if (this.uids.size >= this.max) this.uids.delete(this.uids.values().next().value as string);
    this.uids.add(uid);
  }
}

/** Whether the owner a reference names exists with that uid; the store has the last word. */
async function ownerOf(store: Store, cache: SharedCache, gone: GoneOwners, dep: ApiObject, i: number): Promise<ApiObject | undefined> {
  const r = (dep.metadata.ownerReferences ?? [])[i];
  if (!r) return undefined;
  if (gone.has(r.uid)) return undefined;
  const target = ownerRefTarget(r, dep);
  const cached = cache.kinds().includes(r.kind) ? cache.get(target) : undefined;
  if (cached?.metadata.uid === r.uid) return cached;
  const live = await store.tryGet(target);
  if (live?.metadata.uid === r.uid) return live;
  gone.add(r.uid);
  return undefined;
}

async function reconcileDependent(obj: ApiObject, ctx: ReconcileContext, cache: SharedCache, gone: GoneOwners): Promise<void> {
  const refs = obj.metadata.ownerReferences ?? [];
  if (refs.length === 0) return;
  const dangling = new Set<string>();
  let foregroundOwner: string | undefined;
  for (let i = 0; i < refs.length; i++) {
    const owner = await ownerOf(ctx.store, cache, gone, obj, i);
    const r = refs[i];
    if (!r) continue;
    if (!owner) dangling.add(r.uid);
    else if (owner.metadata.deletionTimestamp && hasFinalizer(owner, FOREGROUND_FINALIZER)) foregroundOwner = r.name;
  }
  if (dangling.size === refs.length || foregroundOwner) {
    if (obj.metadata.deletionTimestamp) return;
    ctx.log.info({ owner: foregroundOwner }, foregroundOwner ? 'deleting dependent of an owner deleted in the foreground' : 'deleting dependent: its owners are gone');
    try {
      await ctx.store.delete(refOf(obj), { resourceVersion: obj.metadata.resourceVersion });
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    return;
  }
  if (dangling.size > 0) {
    await updateWithRetry(ctx.store, refOf(obj), (o) => {
      const kept = (o.metadata.ownerReferences ?? []).filter((r) => !dangling.has(r.uid));
      if (kept.length === (o.metadata.ownerReferences ?? []).length) return undefined;
      return { ...o, metadata: { ...o.metadata, ownerReferences: kept } };
    });
  }
}

async function reconcileOwner(obj: ApiObject, ctx: ReconcileContext): Promise<ReconcileResult> {
  const uid = obj.metadata.uid;
  if (!uid || !obj.metadata.deletionTimestamp) return undefined;
  const ref = refOf(obj);
  if (hasFinalizer(obj, ORPHAN_FINALIZER)) {
    for (const d of await liveDependents(ctx.store, uid, obj.metadata.namespace)) {
      await updateWithRetry(ctx.store, refOf(d), (o) => {
        const refs = o.metadata.ownerReferences ?? [];
        if (!refs.some((r) => r.uid === uid)) return undefined;
        return { ...o, metadata: { ...o.metadata, ownerReferences: refs.filter((r) => r.uid !== uid) } };
      });
    }
    ctx.log.info({}, 'dependents orphaned; removing the orphan finalizer');
    await removeFinalizer(ctx.store, ref, ORPHAN_FINALIZER);
    return undefined;
  }
  if (hasFinalizer(obj, FOREGROUND_FINALIZER)) {
    const deps = await liveDependents(ctx.store, uid, obj.metadata.namespace);
    if (deps.length > 0) {
      for (const d of deps) {
        if (d.metadata.deletionTimestamp) continue;
        try {
          await ctx.store.delete(refOf(d));
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
        }
      }
      // Their deletion events requeue this owner; the delay is a safety net.
      return { requeueAfterMs: 5000 };
    }
    ctx.log.info({}, 'all dependents gone; removing the foregroundDeletion finalizer');
    await removeFinalizer(ctx.store, ref, FOREGROUND_FINALIZER);
  }
  return undefined;
}

/**
 * What the collector reads of an object: its uid, owners, deletion and its own two finalizers
 * (orphan, foreground). Other finalizers are not its business: the whole list here woke it for
 * every VM given the runtime's and every VC given the storage's (one reconcile each of 10,000 VMs
 * and 2,500 VCs at hack/bench-scale's size, session 24); a dependent they hold back wakes its
 * owner when it is gone, which always passes.
 */
export function gcSignature(o: ApiObject): unknown {
  return [o.metadata.uid, o.metadata.ownerReferences, o.metadata.deletionTimestamp, hasFinalizer(o, ORPHAN_FINALIZER), hasFinalizer(o, FOREGROUND_FINALIZER)];
}

/** The garbage collector's controllers, one per kind in `kinds`. */
export function garbageCollectorSpecs(cache: SharedCache, kinds: readonly string[] = GC_KINDS): ControllerSpec[] {
  // Shared by the kinds: an owner's dependents are of several (a VC's VMs, Volumes, Migrations).
  const gone = new GoneOwners();
  return kinds.map((kind): ControllerSpec => ({
    name: `${GC_NAME}/${kind.toLowerCase()}`,
    forKind: kind,
    // What the collector reads of its own object: status writes do not wake it.
    forSignature: gcSignature,
    // Each reconcile mostly waits on the store (a delete, a finalizer's removal): with 2, the last
    // phase of deleting 750 VCs had ~2,800 VirtualNodes queued here, a delete of 3,000 VMs 52.8 s;
    // with 8, 40.1 s (hack/bench-scale --sizes 300:3000, session 20).
    workers: 8,
    resyncMs: 0,
    watches: kinds.map((other) => ({
      kind: other,
      // Only what the collector reads of another object passes (change-filter.ts): its uid,
      // owners, deletion and finalizers; its gone-ness always. Each status write of a VM mapped to
      // its VC, and each of a VC's to its VMs and Volumes (hack/bench-scale: 8,683 collector
      // reconciles of 750 VCs before one VM was bound).
      map: mapOnChange(cache, gcSignature, (o) => {
        const out: ObjectRef[] = [];
        // o's owners of this kind whose foreground deletion waits for o: an owner the cache holds
        // not being deleted has nothing to wait for (its deletion's own event wakes it, and it then
        // reads its dependents from the store). Every VM and Volume made woke its VC and VM
        // (hack/bench-scale).
        for (const r of o.metadata.ownerReferences ?? []) {
          if (r.kind !== kind) continue;
          const owner = ownerRefTarget(r, o);
          const held = cache.get(owner);
          if (held && !held.metadata.deletionTimestamp) continue;
          out.push(owner);
        }
        // o's dependents of this kind, when o has gone or is being deleted (as the cache holds it
        // now: the mapper sees the old version too). A live owner's other changes (a finalizer
        // added) concern none of them: each woke every VM and Volume of its VC (hack/bench-scale).
        const now = cache.get(refOf(o));
        if (o.metadata.uid && (!now || now.metadata.deletionTimestamp)) {
          for (const d of cache.listByOwner(kind, o.metadata.uid)) out.push(refOf(d));
        }
        return out;
      }),
    })),
    async reconcile(key, ctx) {
      // Most objects need nothing: decide from the cache, and read the store only to act.
      const cached = cache.get(key);
      if (!cached) return undefined;
      const ownerWork = cached.metadata.deletionTimestamp !== undefined &&
        (hasFinalizer(cached, ORPHAN_FINALIZER) || hasFinalizer(cached, FOREGROUND_FINALIZER));
      if (ownerWork) {
        const live = await ctx.store.tryGet(key);
        if (!live) return undefined;
        const r = await reconcileOwner(live, ctx);
        if (r) return r;
      }
      // Owners are confirmed against the store before anything is deleted (ownerOf).
      await reconcileDependent(cached, ctx, cache, gone);
      return undefined;
    },
  }));
}
