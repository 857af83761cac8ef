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
