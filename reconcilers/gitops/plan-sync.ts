// Pure planning of a sync: the order objects are applied in, which objects of the inventory are
// pruned, and what the inventory becomes. No I/O; table-tested in test/gitops/plan-sync.test.ts.
//
// Safety rules (issue 10):
// - Only objects in this source's inventory are ever pruned. An object outside it is never
//   touched, whatever its labels or annotations say.
// - An inventory object is pruned only if its live copy still carries this source's annotation:
//   an object someone deleted and re-created by hand (without the annotation) is left alone and
//   forgotten.
// - A source that came up empty never prunes its whole inventory at once unless allowEmpty is set:
//   an empty checkout is far more often a mistake (wrong branch, failed clone, moved directory)
//   than a request to delete everything.

import { createHash } from 'node:crypto';
import { basename, resolve } from 'node:path';
import type { ApiObject } from '../../api/types.js';
import type { ObjectRef } from '../../api/store/types.js';

/** Annotation every object a sync applies carries: `<namespace>/<name>` of its GitSource. */
export const SYNC_SOURCE_ANNOTATION = 'virtualinux.org/sync-source';

export interface InventoryEntry {
  kind: string;
  /** Omitted for cluster-scoped kinds. */
  namespace?: string;
  name: string;
}

/** Lower rank is applied first (and pruned last). Kinds not listed come after these. */
const APPLY_RANK: Readonly<Record<string, number>> = {
  PhysicalNode: 0,
  OSTemplate: 1,
  VirtualCluster: 2,
};
const OTHER_RANK = 3;

function rankOf(kind: string): number {
  return APPLY_RANK[kind] ?? OTHER_RANK;
}

/**
 * The objects in dependency order: PhysicalNodes and OSTemplates before VirtualClusters, then
 * every other kind. Stable: within a rank the input order (files sorted by path, documents in file
 * order) is kept.
 */
export function orderForApply<T extends { kind: string }>(objects: readonly T[]): T[] {
  return objects
    .map((o, i) => ({ o, i }))
    .sort((a, b) => rankOf(a.o.kind) - rankOf(b.o.kind) || a.i - b.i)
    .map((x) => x.o);
}

/** Deletion order: the reverse of the apply order (VirtualClusters before what they run on). */
export function orderForPrune<T extends { kind: string }>(refs: readonly T[]): T[] {
  return orderForApply(refs).reverse();
}

export function refOf(obj: ApiObject): InventoryEntry {
  const e: InventoryEntry = { kind: obj.kind, name: obj.metadata.name };
  if (obj.metadata.namespace) e.namespace = obj.metadata.namespace;
  return e;
}

/** A stable string identity of a ref: `Kind/ns/name` (`Kind//name` cluster-scoped). */
export function inventoryKey(ref: ObjectRef | InventoryEntry): string {
  return `${ref.kind}/${ref.namespace ?? ''}/${ref.name}`;
}

/** The value of SYNC_SOURCE_ANNOTATION for a GitSource. */
export function sourceId(source: { namespace: string; name: string }): string {
  return `${source.namespace}/${source.name}`;
}

/**
 * Returns a copy of obj with the sync-source annotation set (other metadata untouched). The
 * revision is deliberately not stamped on objects: it would rewrite every object on every commit
 * and wake every controller for nothing; the GitSource status records it instead.
 */
export function annotateForSource<T extends ApiObject>(obj: T, id: string): T {
  const annotations = { ...(obj.metadata.annotations ?? {}), [SYNC_SOURCE_ANNOTATION]: id };
  return { ...obj, metadata: { ...obj.metadata, annotations } };
}

/** Whether a live object is marked as applied by the given source. */
export function isOwnedBySource(obj: ApiObject | undefined, id: string): boolean {
  return obj?.metadata.annotations?.[SYNC_SOURCE_ANNOTATION] === id;
}

const DNS_LABEL_MAX = 63;

/**
 * The default GitSource name for a directory: its base name reduced to a DNS-1123 label
 * (`./Cluster Manifests/` -> `cluster-manifests`). A name that would be empty becomes `source-`
 * plus a short hash of the absolute path, so it is still stable per directory.
 */
export function deriveSourceName(dir: string): string {
  const abs = resolve(dir);
  let name = basename(abs)
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (name.length > DNS_LABEL_MAX) name = name.slice(0, DNS_LABEL_MAX).replace(/-+$/, '');
  if (!name) name = `source-${createHash('sha256').update(abs).digest('hex').slice(0, 10)}`;
  return name;
}

export interface PrunePlanInput {
  /** What the source applied before this sync (the GitSource's status.inventory). */
  inventory: readonly InventoryEntry[];
  /** What this revision holds (already applied, or about to be). */
  desired: readonly InventoryEntry[];
  /** The live copy of every inventory entry that is not desired; a missing key = not in the store. */
  live: ReadonlyMap<string, ApiObject>;
  /** SYNC_SOURCE_ANNOTATION value of this source. */
  sourceId: string;
  prune: boolean;
  allowEmpty: boolean;
}

export type PrunePlan =
  | {
      refused: false;
      /** Delete these, in this order. */
      delete: InventoryEntry[];
      /** Left the directory but stays (prune off): kept in the inventory so a later --prune removes it. */
      orphaned: InventoryEntry[];
      /** Dropped from the inventory without deleting: already gone, or no longer marked as ours. */
      forgotten: InventoryEntry[];
      /** The inventory after the deletes succeed: desired first, then what stays orphaned. */
      inventory: InventoryEntry[];
    }
  | {
      refused: true;
      reason: 'EmptySource';
      message: string;
    };

/**
 * Decides what a sync prunes. Pure: the caller reads the live objects of the inventory entries
 * that left the directory and performs the deletes in the returned order.
 */
export function planPrune(input: PrunePlanInput): PrunePlan {
  const desiredKeys = new Set(input.desired.map(inventoryKey));
  const gone = dedupe(input.inventory).filter((e) => !desiredKeys.has(inventoryKey(e)));

  if (input.desired.length === 0 && input.prune && !input.allowEmpty) {
    const ours = gone.filter((e) => isOwnedBySource(input.live.get(inventoryKey(e)), input.sourceId));
    if (ours.length > 0) {
      return {
        refused: true,
        reason: 'EmptySource',
        message:
          `the directory holds no manifests, so pruning would delete all ${ours.length} object(s) this source ` +
          'applied; nothing was pruned. Check the directory and the checked-out branch, or pass --allow-empty ' +
          'to really delete them',
      };
    }
  }

  const del: InventoryEntry[] = [];
  const orphaned: InventoryEntry[] = [];
  const forgotten: InventoryEntry[] = [];
  for (const e of gone) {
    if (!isOwnedBySource(input.live.get(inventoryKey(e)), input.sourceId)) forgotten.push(e);
    else if (input.prune) del.push(e);
    else orphaned.push(e);
  }
  return {
    refused: false,
    delete: orderForPrune(del),
    orphaned,
    forgotten,
    inventory: [...dedupe(input.desired), ...orphaned],
  };
}

function dedupe(list: readonly InventoryEntry[]): InventoryEntry[] {
  const seen = new Set<string>();
  const out: InventoryEntry[] = [];
  for (const e of list) {
    const k = inventoryKey(e);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(e.namespace ? { kind: e.kind, namespace: e.namespace, name: e.name } : { kind: e.kind, name: e.name });
  }
  return out;
}
