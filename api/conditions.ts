// Kubernetes-style condition helpers. A condition's lastTransitionTime changes only when its
// status changes; observedGeneration is always set.

import type { Condition } from './types.js';

export interface ConditionInput {
  type: string;
  status: Condition['status'];
  reason: string;
  message?: string;
}

/** Returns a new list with `c` set; lastTransitionTime kept unless the status changed. */
export function setCondition(
  list: readonly Condition[] | undefined,
  c: ConditionInput,
  observedGeneration: number,
  now: Date = new Date(),
): Condition[] {
  const out = [...(list ?? [])];
  const i = out.findIndex((x) => x.type === c.type);
  const prev = i >= 0 ? out[i] : undefined;
  const next: Condition = {
    type: c.type,
    status: c.status,
    reason: c.reason,
    message: c.message ?? '',
    lastTransitionTime:
      prev && prev.status === c.status ? prev.lastTransitionTime : now.toISOString(),
    observedGeneration,
  };
  if (i >= 0) out[i] = next;
  else out.push(next);
  return out;
}

export function getCondition(list: readonly Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type);
}

/** Whether `list` already has `c` as it is: its status, reason and message (a missing message as ''). */
export function conditionHolds(list: readonly Condition[] | undefined, c: ConditionInput): boolean {
  const cur = getCondition(list, c.type);
  return !!cur && cur.status === c.status && cur.reason === c.reason && (cur.message ?? '') === (c.message ?? '');
}

export function isConditionTrue(list: readonly Condition[] | undefined, type: string): boolean {
  return getCondition(list, type)?.status === 'True';
}

// ---- Stalled and Reconciling: one condition per owner, rolled up in one place -------------------
//
// Several controllers act on one object (four on a VirtualCluster). Each owns its own
// `<Owner>Stalled` and `<Owner>Reconciling` conditions (ownedConditionType), which only it sets and
// clears; the object's `Stalled` and `Reconciling` conditions are never written by anyone directly:
// rollUp() derives each from every owner's, so two controllers never overwrite each other.

export const STALLED = 'Stalled';
export const RECONCILING = 'Reconciling';
export type Aggregate = typeof STALLED | typeof RECONCILING;
const AT_REST: Record<Aggregate, { reason: string; message: string }> = {
  Stalled: { reason: 'Reconciled', message: 'no controller is stalled' },
  Reconciling: { reason: 'Succeeded', message: 'no work in flight' },
};

/** The owner's condition of an aggregate: ("placement/virtualcluster", Stalled) -> "PlacementVirtualclusterStalled". */
export function ownedConditionType(owner: string, aggregate: Aggregate = STALLED): string {
  const pascal = owner.split(/[^A-Za-z0-9]+/).filter(Boolean).map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
  return `${pascal}${aggregate}`;
}
/** The owner's stall condition (ownedConditionType with Stalled). */
export function stalledConditionType(owner: string): string {
  return ownedConditionType(owner, STALLED);
}

/**
 * Sets (status True) or clears (status False) one owner's condition of an aggregate and
 * recomputes the aggregate: True when any owner's is (its reason the first owner's by condition
 * type, its message every such owner's "owner: message"), else False at rest.
 */
export function setOwned(
  list: readonly Condition[] | undefined,
  aggregate: Aggregate,
  owner: string,
  c: { status: 'True' | 'False'; reason: string; message: string },
  observedGeneration: number,
  now: Date = new Date(),
): Condition[] {
  const own = setCondition(list, { type: ownedConditionType(owner, aggregate), ...c, message: `${owner}: ${c.message}` }, observedGeneration, now);
  return rollUp(own, aggregate, observedGeneration, now);
}

/** The aggregate derived from every `<Owner><Aggregate>` condition (see above). */
export function rollUp(list: readonly Condition[], aggregate: Aggregate, observedGeneration: number, now: Date = new Date()): Condition[] {
  const on = list
    .filter((c) => c.type !== aggregate && c.type.endsWith(aggregate) && c.status === 'True')
    .sort((a, b) => a.type.localeCompare(b.type));
  const first = on[0];
  return setCondition(list, first
    ? { type: aggregate, status: 'True', reason: first.reason, message: on.map((c) => c.message).join('; ') }
    : { type: aggregate, status: 'False', ...AT_REST[aggregate] }, observedGeneration, now);
}
