// BoundIndex: the VirtualNodes bound to each PhysicalNode and the Migrations onto each, kept from
// the VirtualNode and Migration informers' events, so that one node's allocation as the cache sees
// it costs O(its VMs + the Migrations onto it) instead of a pass over every VM of the cluster
// (10,000 nodes x 100,000 VMs on a resync) or every Migration (a drain of 960 migrations: each
// node's reconcile listed and went over all of them, hack/bench-scale CPU profile, session 14).
//
// Contract: after the informer has applied the events up to revision R (its lastRevision()), the
// index holds exactly the cache's VirtualNodes bound at R (and the Migrations likewise, by their
// own informer's revision); the handlers run synchronously inside
// the informer before it advances its revision, and both store backends deliver the events of one
// revision (one batch) together, so the index never holds half a batch at a revision it reports.

import type { Migration, VirtualNode } from '../../api/types.js';
import type { SharedCache } from '../../controllers/cache.js';
import { cacheKey } from '../../controllers/informer.js';
import { computeAllocation } from './allocation.js';
import type { Usage } from './engine.js';

/** One index per shared cache: placement's allocation and the migration controller read the same one. */
const SHARED = new WeakMap<SharedCache, BoundIndex>();

export class BoundIndex {
  /** The index of `cache` that every controller of its manager shares (made on first use). */
  static of(cache: SharedCache): BoundIndex {
    let index = SHARED.get(cache);
    if (!index) SHARED.set(cache, (index = new BoundIndex(cache)));
    return index;
  }

  /** The VirtualNodes by the node they are bound to (spec.physicalNode). */
  private readonly bound = new NodeMap<VirtualNode>();
  /** The Migrations by target node (spec.targetNode)... */
  private readonly onto = new NodeMap<Migration>();
  /** ...and by the node a running one moves its VM from (status.sourceNode). */
  private readonly from = new NodeMap<Migration>();

  constructor(private readonly cache: SharedCache) {
    cache.informer<VirtualNode>('VirtualNode').addHandlers({
      onAdd: (vn) => this.bound.put(cacheKey(vn.metadata), vn.spec?.physicalNode, vn),
      onUpdate: (_old, vn) => this.bound.put(cacheKey(vn.metadata), vn.spec?.physicalNode, vn),
      onDelete: (vn) => this.bound.drop(cacheKey(vn.metadata)),
    });
    cache.informer<Migration>('Migration').addHandlers({
      onAdd: (m) => this.putMigration(m),
      onUpdate: (_old, m) => this.putMigration(m),
      onDelete: (m) => { this.onto.drop(cacheKey(m.metadata)); this.from.drop(cacheKey(m.metadata)); },
    });
  }

  private putMigration(m: Migration): void {
    this.onto.put(cacheKey(m.metadata), m.spec?.targetNode, m);
    this.from.put(cacheKey(m.metadata), m.status?.sourceNode, m);
  }

  /** The cached Migrations that move a VM onto or (status.sourceNode) from any of `nodes`, each once. */
  migrationsAt(nodes: readonly string[]): Migration[] {
    const out = new Map<string, Migration>();
    for (const n of nodes) {
      for (const [k, m] of this.onto.of(n) ?? []) out.set(k, m);
      for (const [k, m] of this.from.of(n) ?? []) out.set(k, m);
    }
    return [...out.values()];
  }

  /** The cached Migrations onto `node`. */
  migrationsOnto(node: string): Migration[] {
    return this.onto.list(node);
  }

  /** The store revision up to which the index holds every VirtualNode write. */
  revision(): number {
    return this.cache.informer('VirtualNode').lastRevision();
  }

  /** The VirtualNodes bound to `node`, and those the given Migrations move onto it (deduplicated). */
  candidates(node: string, migrations: readonly Migration[]): VirtualNode[] {
    const bound = this.bound.of(node);
    const incoming = migrations.filter((m) => m.spec?.targetNode === node);
    if (incoming.length === 0) return bound ? [...bound.values()] : [];
    const out = new Map(bound ?? []);
    for (const m of incoming) {
      if (!m.spec) continue;
      const ref = { kind: 'VirtualNode', name: m.spec.virtualNode, namespace: m.metadata.namespace };
      const vn = this.cache.get<VirtualNode>(ref);
      if (vn) out.set(cacheKey(ref), vn);
    }
    return [...out.values()];
  }

  /**
   * computeAllocation of `node` over the cache: its bound VMs plus the reservations of
   * `migrations` (by default the cached Migrations onto it: only those count for it).
   */
  allocation(node: string, migrations: readonly Migration[] = this.migrationsOnto(node)): Usage {
    return computeAllocation(node, this.candidates(node, migrations), migrations);
  }
}

/** Objects by the node they name, kept as they change (put again) and go (drop). */
class NodeMap<T> {
  private readonly byNode = new Map<string, Map<string, T>>();
  private readonly nodeOf = new Map<string, string>();

  put(key: string, node: string | undefined, o: T): void {
    if (this.nodeOf.get(key) !== node) this.drop(key);
    if (!node) return;
    let m = this.byNode.get(node);
    if (!m) this.byNode.set(node, (m = new Map()));
    m.set(key, o);
    this.nodeOf.set(key, node);
  }

  drop(key: string): void {
    const node = this.nodeOf.get(key);
    if (node === undefined) return;
    this.nodeOf.delete(key);
    const m = this.byNode.get(node);
    m?.delete(key);
    if (m?.size === 0) this.byNode.delete(node);
  }

  /** The objects naming `node`, by key (not to be changed). */
  of(node: string): ReadonlyMap<string, T> | undefined {
    return this.byNode.get(node);
  }

  list(node: string): T[] {
    const m = this.byNode.get(node);
    return m ? [...m.values()] : [];
  }
}
