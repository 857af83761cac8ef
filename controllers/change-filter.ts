// Scale helpers for controllers. mapOnChange: a watch mapper that passes an event on only when what the controller reads of the object
// changed. Most events of a busy object are writes the watching controller does not read (a VM's
// status writes, a node's allocation): mapping each of them to every node or every cluster made
// the work grow as objects x events (hack/bench-scale). An object gone from the cache (deleted)
// always counts as a change (when the mapper is given the cache; without it, a deletion whose
// last state has the same signature passes nothing: for controllers that resync anyway).
//
// Contract: `signature(o)` returns a JSON-able value of exactly the fields the controller's plans
// read (and deletion, when it matters); the first event of each object passes. A spec stands in a
// signature as [metadata.uid, metadata.generation], never as itself: the store bumps generation on
// every spec change (planWrite), so the pair changes exactly when the spec does, and a VC's spec
// turned to JSON once per event per mapper was most of these mappers' cost (hack/bench-scale). The mapper keeps
// one 53-bit hash of the signature's JSON per object it saw (dropped on deletion): kept as JSON,
// the signatures were 129 MiB of vc-manager's live heap at 10,000 VMs (a sampled heap profile of
// hack/bench-scale, session 13). A change whose signature hashes alike is missed with a
// probability of 2^-53 (and caught by the controller's resync).

import type { ApiObject } from '../api/types.js';
import type { ObjectRef } from '../api/store/types.js';
import type { CacheReader } from './types.js';

export function mapOnChange(
  cache: CacheReader | undefined,
  signature: (o: ApiObject) => unknown,
  map: (o: ApiObject) => ObjectRef[],
): (o: ApiObject) => ObjectRef[] {
  const seen = new Map<string, number>();
  return (o) => {
    const ref = { kind: o.kind, name: o.metadata.name, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}) };
    const key = `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    const sig = !cache || cache.get(ref) ? signatureHash(signature, o) : undefined;
    if (sig !== undefined && seen.get(key) === sig) return [];
    if (sig === undefined) seen.delete(key);
    else seen.set(key, sig);
    return map(o);
  };
}

/**
 * Each object version's signature hash, per signature function: an update is mapped with its old
 * and its new version (the old one hashed again each time), and the garbage collector's mappers,
 * one per pair of kinds, share one signature. Objects in the cache are never changed in place, so
 * a version's hash is computed once (a WeakMap: it goes with the version).
 */
const HASHES = new WeakMap<(o: ApiObject) => unknown, WeakMap<ApiObject, number>>();

function signatureHash(signature: (o: ApiObject) => unknown, o: ApiObject): number {
  let byObject = HASHES.get(signature);
  if (!byObject) HASHES.set(signature, (byObject = new WeakMap()));
  let h = byObject.get(o);
  if (h === undefined) byObject.set(o, (h = hash53(JSON.stringify(signature(o)) ?? 'undefined')));
  return h;
}

/**
 * Whether two versions of one object agree on `signature` (by its hash: see signatureHash). For
 * the change filters of ControllerSpec.forSignature, ownedSignature and WatchSpec.signature.
 */
export function sameSignature(signature: (o: ApiObject) => unknown, a: ApiObject, b: ApiObject): boolean {
  return signatureHash(signature, a) === signatureHash(signature, b);
}

/** An object's owner references: what every owner mapping reads. */
export function ownerRefs(o: ApiObject): unknown {
  return o.metadata.ownerReferences;
}

/** A 53-bit hash of a string (cyrb53, public domain): two 32-bit multiplicative hashes combined. */
export function hash53(str: string): number {
  return new Hash53().update(str).digest();
}

/**
 * hash53 of several strings fed in turn, as of their concatenation, without making it: a digest
 * of thousands of routes without a string per route and their joined text (hack/bench-scale).
 */
export class Hash53 {
  private h1 = 0xdeadbeef;
  private h2 = 0x41c6ce57;
  update(str: string): this {
    let { h1, h2 } = this;
    for (let i = 0; i < str.length; i++) {
      const ch = str.charCodeAt(i);
      h1 = Math.imul(h1 ^ ch, 2654435761);
      h2 = Math.imul(h2 ^ ch, 1597334677);
    }
    this.h1 = h1;
    this.h2 = h2;
    return this;
  }
  /** Mixes in a digest() of another Hash53 (53 bits: its two words), as update() mixes characters. */
  updateDigest(n: number): this {
    const lo = n >>> 0;
    const hi = Math.floor(n / 4294967296) >>> 0;
    this.h1 = Math.imul(Math.imul(this.h1 ^ lo, 2654435761) ^ hi, 2654435761);
    this.h2 = Math.imul(Math.imul(this.h2 ^ lo, 1597334677) ^ hi, 1597334677);
    return this;
  }
  digest(): number {
    const h1 = Math.imul(this.h1 ^ (this.h1 >>> 16), 2246822507) ^ Math.imul(this.h2 ^ (this.h2 >>> 13), 3266489909);
    const h2 = Math.imul(this.h2 ^ (this.h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    return 4294967296 * (2097151 & h2) + (h1 >>> 0);
  }
}

/**
 * The state of the cache's informers of `kinds` as one string (their revisions), for results
 * computed once per state and shared by every reconcile in between; undefined for a cache
 * without informers (tests' plain readers): compute each time.
 */
export function cacheState(cache: CacheReader, kinds: readonly string[]): string | undefined {
  const inf = (cache as { informer?: (kind: string) => { lastRevision(): number } }).informer;
  return inf ? kinds.map((k) => inf.call(cache, k).lastRevision()).join(',') : undefined;
}

/**
 * `compute(cache)`, kept while the cache's informers of `kinds` are unchanged (cacheState) and
 * shared by every reconcile in between; a cache without informers: computed each time. For
 * results every key needs and that cost a pass over a kind (a node's address per VC reconcile).
 */
export function perCacheState<T>(kinds: readonly string[], compute: (cache: CacheReader) => T): (cache: CacheReader) => T {
  let memo: { at: string; value: T } | undefined;
  return (cache) => {
    const at = cacheState(cache, kinds);
    if (at === undefined) return compute(cache);
    if (memo?.at !== at) memo = { at, value: compute(cache) };
    return memo.value;
  };
}

/**
 * The objects of `kind` for which `of` gives `value`, from an index the cache's informer keeps
 * (Informer.addIndexer, added on first use under `name`; one `of` per name); a cache without
 * informers (tests' plain readers): a pass over the kind. For lookups that a perCacheState memo
 * rebuilt on every write of the kind (a VM's Migrations in a drain: Migrations x writes).
 */
export function byIndex<T extends ApiObject>(cache: CacheReader, kind: string, name: string, of: (o: T) => readonly string[], value: string): T[] {
  const inf = (cache as { informer?: (kind: string) => { addIndexer(n: string, f: (o: T) => readonly string[]): void; byIndex(n: string, v: string): T[] } }).informer;
  if (!inf) return cache.list<T>(kind).filter((o) => of(o).includes(value));
  const informer = inf.call(cache, kind);
  informer.addIndexer(name, of);
  return informer.byIndex(name, value);
}

/**
 * How many objects of `kind` the cache holds, without copying them (a list of 10,000 VMs per call
 * only for its length was a visible share of network/hosts' node reconciles: hack/bench-scale); a
 * cache without informers (tests' plain readers): its list's length.
 */
export function cachedCount(cache: CacheReader, kind: string): number {
  const inf = (cache as { informer?: (kind: string) => { size(): number } }).informer;
  return inf ? inf.call(cache, kind).size() : cache.list(kind).length;
}
