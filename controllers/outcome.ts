// The one place where a reconcile's outcome becomes conditions (see the taxonomy in types.ts).
// Pure: given the outcome, the controller's name and its declared condition, it says which of the
// controller's own conditions to set or clear; controller.ts writes them in one status write.

import type { ConditionInput } from '../api/conditions.js';
import { GenericError, StallingError, WaitingError } from './types.js';
import type { Aggregate } from '../api/conditions.js';

export type Outcome =
  | { kind: 'done' }
  | { kind: 'requeue'; afterMs: number }
  | { kind: 'terminal'; err: StallingError }
  | { kind: 'waiting'; err: WaitingError }
  | { kind: 'error'; err: unknown; timeout: boolean };

/** What a thrown error is, in the taxonomy. */
export function classify(err: unknown, timeout: boolean): Outcome {
  if (err instanceof StallingError) return { kind: 'terminal', err };
  if (err instanceof WaitingError) return { kind: 'waiting', err };
  return { kind: 'error', err, timeout };
}

export interface ConditionEffects {
  /** The controller's own aggregate conditions to set True. */
  set: { aggregate: Aggregate; reason: string; message: string }[];
  /** Its own aggregate conditions to clear (written only when they are True). */
  clear: Aggregate[];
  /** Its declared condition (spec.condition), set False with the error's reason. */
  condition?: ConditionInput;
}

export function conditionEffects(outcome: Outcome, condition: string | undefined): ConditionEffects {
  const own = (reason: string, message: string): ConditionInput | undefined =>
    condition ? { type: condition, status: 'False', reason, message } : undefined;
  switch (outcome.kind) {
    case 'done':
    case 'requeue':
      // The reconcile returned: whatever stalled or failed before is past.
      return { set: [], clear: ['Stalled', 'Reconciling'] };
    case 'terminal':
      return { set: [{ aggregate: 'Stalled', reason: outcome.err.reason, message: outcome.err.message }], clear: ['Reconciling'], condition: own(outcome.err.reason, outcome.err.message) };
    case 'waiting':
      return { set: [{ aggregate: 'Reconciling', reason: outcome.err.reason, message: outcome.err.message }], clear: [], condition: own(outcome.err.reason, outcome.err.message) };
    case 'error':
      if (outcome.err instanceof GenericError) {
        return { set: [{ aggregate: 'Reconciling', reason: outcome.err.reason, message: outcome.err.message }], clear: [], condition: own(outcome.err.reason, outcome.err.message) };
      }
      return { set: [], clear: [] };
  }
}
