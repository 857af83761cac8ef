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

export function isConditionTrue(list: readonly Condition[] | undefined, type: string): boolean {
  return getCondition(list, type)?.status === 'True';
}

// ---- Stalled: one condition per owner, rolled up in one place ---------------------------------
//
// Several controllers act on one object (four on a VirtualCluster). Each owns its own stall
// condition, `<Owner>Stalled` (stalledConditionType), which only it sets and clears; the object's
// `Stalled` condition is never written by anyone directly: rollUpStalled() derives it from every
// `<Owner>Stalled` there is, so two stalled controllers never overwrite each other.

export const STALLED = 'Stalled';
const STALLED_SUFFIX = 'Stalled';

/** The stall condition a controller owns: "placement/virtualcluster" -> "PlacementVirtualclusterStalled". */
export function stalledConditionType(owner: string): string {
  const pascal = owner.split(/[^A-Za-z0-9]+/).filter(Boolean).map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
  return `${pascal}${STALLED_SUFFIX}`;
}

/**
 * Sets (status True) or clears (status False) one owner's stall and recomputes `Stalled`:
 * True when any owner is stalled (its reason the first stalled owner's, its message every
 * stalled owner's "owner: message"), else False with reason Reconciled.
 */
export function setStall(
  list: readonly Condition[] | undefined,
  owner: string,
  stall: { status: 'True' | 'False'; reason: string; message: string },
  observedGeneration: number,
  now: Date = new Date(),
): Condition[] {
  const own = setCondition(list, { type: stalledConditionType(owner), ...stall, message: `${owner}: ${stall.message}` }, observedGeneration, now);
  return rollUpStalled(own, observedGeneration, now);
}

/** `Stalled` derived from every `<Owner>Stalled` condition (see above). */
export function rollUpStalled(list: readonly Condition[], observedGeneration: number, now: Date = new Date()): Condition[] {
  const stalled = list
    .filter((c) => c.type !== STALLED && c.type.endsWith(STALLED_SUFFIX) && c.status === 'True')
    .sort((a, b) => a.type.localeCompare(b.type));
  const first = stalled[0];
  return setCondition(list, first
    ? { type: STALLED, status: 'True', reason: first.reason, message: stalled.map((c) => c.message).join('; ') }
    : { type: STALLED, status: 'False', reason: 'Reconciled', message: 'no controller is stalled' }, observedGeneration, now);
}
