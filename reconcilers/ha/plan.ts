// The node-failure decision (high availability), as a pure function of what the store says about
// one PhysicalNode and the VMs bound to it. The controller (controller.ts) only carries it out.
//
// Never two copies: a VM is unbound from its node only once the node is `Fenced` (condition True),
// and that condition is written only after the fencing agent's status answer said "off", in the
// same store batch as the unbinding. Every step is read back from the store, so a manager that
// restarts anywhere in between repeats at most an idempotent power-off and then finishes.
//
// States of the `Fenced` condition (PhysicalNode status):
//   absent / False              not fenced (reasons FencingFailed, NoFencingAgent, Recovered)
//   True, reason Fenced         powered off by its agent; cordoned; its VMs with
//                               highAvailability restart unbound (placement puts them elsewhere)
// A fenced node is cleared (False, Recovered) once a user uncordoned it and it is Ready again (the
// node controller stops its stale domains before it reports Ready: stale-domains.ts).

import type { Condition } from '../../api/types.js';

export const FENCED = 'Fenced';

export interface HaVm {
  name: string;
  namespace: string;
  /** The VC's spec.highAvailability (restart when omitted); undefined VC: left alone. */
  ha: 'restart' | 'none' | undefined;
}

export interface HaInput {
  node: string;
  hasFencingAgent: boolean;
  unschedulable: boolean;
  ready: Condition | undefined;
  fenced: Condition | undefined;
  /** VMs whose spec.physicalNode is this node (not being deleted). */
  vms: readonly HaVm[];
  graceMs: number;
  nowMs: number;
}

export type HaAction =
  | { type: 'none'; requeueAfterMs?: number }
  /** Power the node off; on a confirmed fence cordon it, mark it Fenced and unbind `unbind`. */
  | { type: 'fence'; unbind: HaVm[]; message: string }
  /** Fenced already: unbind these (a manager restarted after the fence, or a late binding). */
  | { type: 'unbind'; unbind: HaVm[] }
  /** Past the grace with no agent: say so (Fenced False, NoFencingAgent); nothing restarts. */
  | { type: 'noAgent'; message: string }
  /** Back, Ready and uncordoned after a fence (or Ready after a failed one): Fenced False. */
  | { type: 'clear'; reason: 'Recovered'; message: string };

export function restartable(vms: readonly HaVm[]): HaVm[] {
  return vms.filter((v) => v.ha === 'restart');
}

/**
 * Whether planHa can read `vms` for a node in this state: only a Fenced node or a node NotReady
 * (with a Ready condition) needs its VMs. For any other node the plan is `none` or `clear` whatever
 * VMs it has, so the controller need not gather them: at 1,000 nodes every ha reconcile of a
 * healthy node (resyncs, its status writes) gathered them from every VM (hack/bench-scale).
 */
export function planNeedsVms(i: Pick<HaInput, 'ready' | 'fenced'>): boolean {
  return i.fenced?.status === 'True' || (!!i.ready && i.ready.status !== 'True');
}

export function planHa(i: HaInput): HaAction {
  const isReady = i.ready?.status === 'True';
  if (i.fenced?.status === 'True') {
    const lost = restartable(i.vms);
    if (lost.length > 0) return { type: 'unbind', unbind: lost };
    if (isReady && !i.unschedulable) {
      return { type: 'clear', reason: 'Recovered', message: `node ${i.node} is Ready and uncordoned after its fence` };
    }
    return { type: 'none' };
  }
  if (isReady) {
    if (i.fenced && i.fenced.reason !== 'Recovered') {
      return { type: 'clear', reason: 'Recovered', message: `node ${i.node} is Ready again; not fenced` };
    }
    return { type: 'none' };
  }
  // Not Ready. A node never probed Ready (no condition yet) ran nothing: nothing to recover.
  if (!i.ready) return { type: 'none' };
  const lost = restartable(i.vms);
  if (lost.length === 0) return { type: 'none' };
  const since = Date.parse(i.ready.lastTransitionTime);
  const wait = (Number.isFinite(since) ? since : i.nowMs) + i.graceMs - i.nowMs;
  if (wait > 0) return { type: 'none', requeueAfterMs: wait };
  const message = `node ${i.node} has been NotReady (${i.ready.reason}) for ${Math.round((i.nowMs - since) / 1000)} s, past the ${Math.round(i.graceMs / 1000)} s grace; ${lost.length} VM(s) to restart elsewhere`;
  if (!i.hasFencingAgent) {
    return { type: 'noAgent', message: `${message}, but spec.fencing names no agent: nothing is restarted (a node that may still run them is never assumed off)` };
  }
  return { type: 'fence', unbind: lost, message };
}
