// Deletion with a propagation policy, as `vcctl delete --cascade=` selects:
// - background (default): the owner is deleted now; the garbage collector then deletes every
//   dependent whose owners are all gone.
// - foreground: the owner gets the `foregroundDeletion` finalizer and a deletionTimestamp; the
//   garbage collector deletes its dependents and removes the finalizer once none is left, and the
//   owner goes last.
// - orphan: the owner gets the `orphan` finalizer; the garbage collector removes the owner's
//   ownerReferences from its dependents, then the finalizer; the dependents stay.
// Foreground and orphan need a running vc-manager to finish.

import type { ApiObject } from '../../api/types.js';
import type { ObjectRef, Store } from '../../api/store/types.js';
import { ensureFinalizer } from './finalizers.js';

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
    await ensureFinalizer(store, ref, policy === 'foreground' ? FOREGROUND_FINALIZER : ORPHAN_FINALIZER);
  }
  return store.delete<T>(ref);
}
