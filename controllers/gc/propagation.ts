// Deletion with a propagation policy, as `vcctl delete --cascade=` selects:
// - background (default): the owner is deleted now; the garbage collector then deletes every
//   dependent whose owners are all gone.
// - foreground: the owner gets the `foregroundDeletion` finalizer and a deletionTimestamp; the
//   garbage collector deletes its dependents and removes the finalizer once none is left, and the
//   owner goes last.
// - orphan: the owner gets the `orphan` finalizer; the garbage collector removes the owner's
//   ownerReferences from its dependents, then the finalizer; the dependents stay.
// Foreground and orphan need a running vc-manager to finish, except for an object nothing
// references: then all three policies are the same plain delete, and it happens at once. (A
// dependent created between that check and the delete is collected as in background.)

import type { ApiObject } from '../../api/types.js';
import { KINDS } from '../../api/kinds.js';
import type { ObjectRef, Store } from '../../api/store/types.js';
import { ensureFinalizer } from '../../api/finalizers.js';

/** Kinds that can own or be owned. Events are never owned. */
export const GC_KINDS: readonly string[] = KINDS.map((k) => k.kind).filter((k) => k !== 'Event');

/** Every stored object (of GC_KINDS, in `namespace` or everywhere) that references uid; a live read. */
export async function liveDependents(store: Store, uid: string, namespace: string | undefined): Promise<ApiObject[]> {
  const out: ApiObject[] = [];
  for (const kind of GC_KINDS) {
    const { items } = await store.list(kind, namespace ? { namespace } : {});
    for (const o of items) if (o.metadata.ownerReferences?.some((r) => r.uid === uid)) out.push(o);
  }
  return out;
}

export type PropagationPolicy = 'background' | 'foreground' | 'orphan';
export const PROPAGATION_POLICIES: readonly PropagationPolicy[] = ['background', 'foreground', 'orphan'];

export const FOREGROUND_FINALIZER = 'foregroundDeletion';
export const ORPHAN_FINALIZER = 'orphan';

export function parsePropagationPolicy(text: string): PropagationPolicy {
  const p = PROPAGATION_POLICIES.find((x) => x === text);
  if (!p) throw new Error(`--cascade=${text}: use one of ${PROPAGATION_POLICIES.join(', ')}`);
  return p;
}

/** Deletes `ref` with the given policy. Returns the object as the delete left it. */
export async function deleteWithPropagation<T extends ApiObject>(
  store: Store,
  ref: ObjectRef,
  policy: PropagationPolicy = 'background',
): Promise<T> {
  if (policy !== 'background') {
    const obj = await store.get(ref);
    const uid = obj.metadata.uid;
    if (uid && (await liveDependents(store, uid, obj.metadata.namespace)).length > 0) {
      await ensureFinalizer(store, ref, policy === 'foreground' ? FOREGROUND_FINALIZER : ORPHAN_FINALIZER);
    }
  }
  return store.delete<T>(ref);
}
