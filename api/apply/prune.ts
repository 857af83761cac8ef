// Pruning: deleting objects an earlier apply created that the current set of manifests no longer
// contains. Only objects carrying the last-applied annotation are candidates (objects made by
// controllers or by hand are never pruned), and only those matching the label selector.

import { KINDS } from '../kinds.js';
import type { ObjectRef, Store } from '../store/types.js';
import type { ApiObject } from '../types.js';
import { refOf } from './apply-objects.js';
import { LAST_APPLIED_ANNOTATION } from './plan-apply.js';

export interface PruneOptions {
  /** The objects the current apply contains: never pruned. */
  keep: ObjectRef[];
  /** Kubernetes label selector; required by the CLI so a prune never sweeps everything. */
  labelSelector?: string;
  /** Namespace of namespaced kinds to prune in; undefined = every namespace. */
  namespace?: string;
  /** Kinds to consider (default: every kind except Event). */
  kinds?: string[];
  dryRun?: 'client' | 'server';
}

export interface PruneResult {
  ref: ObjectRef;
  action: 'pruned';
  object: ApiObject;
  dryRun?: 'client' | 'server';
}

export async function pruneObjects(store: Store, opts: PruneOptions): Promise<PruneResult[]> {
  const keep = new Set(opts.keep.map((r) => `${r.kind}/${r.namespace ?? ''}/${r.name}`));
  const kinds = opts.kinds ?? KINDS.filter((k) => k.kind !== 'Event').map((k) => k.kind);
  const out: PruneResult[] = [];
  for (const kind of kinds) {
    const info = KINDS.find((k) => k.kind === kind);
    const { items } = await store.list(kind, {
      labelSelector: opts.labelSelector,
      ...(info?.namespaced && opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
    });
    for (const o of items) {
      const ref = refOf(o);
      if (keep.has(`${ref.kind}/${ref.namespace ?? ''}/${ref.name}`)) continue;
      if (!o.metadata.annotations?.[LAST_APPLIED_ANNOTATION] || o.metadata.deletionTimestamp) continue;
      const object = opts.dryRun ? o : await store.delete(ref);
      out.push({ ref, action: 'pruned', object, ...(opts.dryRun ? { dryRun: opts.dryRun } : {}) });
    }
  }
  return out;
}
