// A reconcile's last status write of its own object, folding in what its success clears (its own
// Reconciling and Stalled): ReconcileContext.writeFinalStatus where the controller runtime gives
// it, else a plain writeStatusOver (a context made by hand in a test, say).

import { writeStatusOver } from '../api/status-writer.js';
import type { ApiObject } from '../api/types.js';
import type { ReconcileContext } from './types.js';

export function finalStatusWrite<T extends ApiObject>(ctx: ReconcileContext, obj: T, next: (current: T) => T['status'] | undefined): Promise<T | undefined> {
  return ctx.writeFinalStatus ? ctx.writeFinalStatus(obj, next) : writeStatusOver(ctx.store, obj, next);
}
