// ownerReferences helpers. A dependent names its owners by kind, name and uid; the uid makes a
// reference to a deleted-and-recreated owner of the same name dangle, as in Kubernetes.

import type { ApiObject, OwnerReference } from '../../api/types.js';
import { resolveKind } from '../../api/kinds.js';
import type { ObjectRef } from '../../api/store/types.js';

/** The controller reference to put on an object the owner's controller creates. */
export function controllerReference(owner: ApiObject): OwnerReference {
  if (!owner.metadata.uid) throw new Error(`${owner.kind} ${owner.metadata.name} has no uid: read it from the store before owning objects with it`);
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name,
    uid: owner.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** The controlling owner reference, if any. */
export function controllerOf(obj: ApiObject): OwnerReference | undefined {
  return obj.metadata.ownerReferences?.find((r) => r.controller);
}

export function isOwnedBy(obj: ApiObject, owner: ApiObject): boolean {
  return (obj.metadata.ownerReferences ?? []).some((r) => r.uid === owner.metadata.uid);
}

/** Where the owner an ownerReference names lives: owners of namespaced kinds share the dependent's namespace. */
export function ownerRefTarget(ref: OwnerReference, dependent: ApiObject): ObjectRef {
  const info = resolveKind(ref.kind);
  const namespaced = info ? info.namespaced : dependent.metadata.namespace !== undefined;
  return namespaced && dependent.metadata.namespace
    ? { kind: ref.kind, name: ref.name, namespace: dependent.metadata.namespace }
    : { kind: ref.kind, name: ref.name };
}
