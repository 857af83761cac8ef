// The node-failure controller (`ha`, key: PhysicalNode): carries out planHa (plan.ts). A node
// NotReady past the grace, with VMs that ask to be restarted, is powered off by its fencing agent
// (drivers/fencing); only the agent's status answer "off" confirms it. Then, read again from the
// store: the node is cordoned (spec.unschedulable), and ONE batch writes its `Fenced` condition,
// gives back the room of its VMs and unbinds them (spec.physicalNode removed), so placement places
// exactly those VMs again with their VC's strategy and mode and the runtime boots them from their
// own disks (the batch also holds the node's Fenced Event). A fence that fails writes `Fenced` False/FencingFailed and a Warning Event; nothing
// is unbound, and the fence is tried again after `retryMs`.

import { getCondition, setCondition } from '../../api/conditions.js';
import type { BatchOp, ObjectRef } from '../../api/store/types.js';
import { DEFAULT_NAMESPACE } from '../../api/kinds.js';
import { API_VERSION, type EventObject, type EventSpec, type PhysicalNode, type VirtualCluster, type VirtualNode } from '../../api/types.js';
import { eventName } from '../../controllers/events.js';
import type { CacheReader, ControllerSpec, ReconcileContext, ReconcileResult } from '../../controllers/types.js';
import { cacheState, mapOnChange } from '../../controllers/change-filter.js';
import { createFencingAgent, type FencingAgent, type FencingOptions } from '../../drivers/fencing/index.js';
import { addUsage, vmUsage, ZERO } from '../placement/plan-binding.js';
import { FENCED, planHa, planNeedsVms, type HaInput, type HaVm } from './plan.js';

export const HA_CONTROLLER_NAME = 'ha';
export const DEFAULT_NODE_FAILURE_GRACE_MS = 30_000;

export interface HaControllerOptions {
  /** How long a node stays NotReady before it is fenced; default 30 s (vc-manager --node-failure-grace). */
  graceMs?: number;
  /** Between attempts of a failing fence; default 15 s. */
  retryMs?: number;
  /** How long to wait for the agent's status to say off after the power-off; default 15 s. */
  confirmTimeoutMs?: number;
  /** The agent of a node (default: createFencingAgent from spec.fencing). */
  agentFor?: (node: PhysicalNode) => FencingAgent;
  fencing?: FencingOptions;
  now?: () => number;
}

function haOf(vc: VirtualCluster | undefined): HaVm['ha'] {
  if (!vc?.spec || vc.metadata.deletionTimestamp) return undefined;
  return vc.spec.highAvailability ?? 'restart';
}

/** The plan's input for `pn` from a snapshot of the VMs and VCs. */
export function haInput(pn: PhysicalNode, vns: readonly VirtualNode[] | (() => readonly VirtualNode[]), vcOf: (vn: VirtualNode) => VirtualCluster | undefined, graceMs: number, nowMs: number): HaInput {
  const ready = getCondition(pn.status?.conditions, 'Ready');
  const fenced = getCondition(pn.status?.conditions, FENCED);
  // The VMs are gathered only when the plan reads them (planNeedsVms): `vns` may be a function.
  const vms = !planNeedsVms({ ready, fenced }) ? [] : (typeof vns === 'function' ? vns() : vns)
    .filter((v) => v.spec?.physicalNode === pn.metadata.name && !v.metadata.deletionTimestamp)
    .map((v) => ({ name: v.metadata.name, namespace: v.metadata.namespace ?? 'default', ha: haOf(vcOf(v)) }));
  return {
    node: pn.metadata.name,
    hasFencingAgent: !!pn.spec?.fencing?.agent,
    unschedulable: pn.spec?.unschedulable === true,
    ready,
    fenced,
    vms,
    graceMs,
    nowMs,
  };
}

export function haController(opts: HaControllerOptions = {}): ControllerSpec {
  const graceMs = opts.graceMs ?? DEFAULT_NODE_FAILURE_GRACE_MS;
  const retryMs = opts.retryMs ?? 15_000;
  const confirmTimeoutMs = opts.confirmTimeoutMs ?? 15_000;
  const now = opts.now ?? Date.now;
  const agentFor = opts.agentFor ?? ((pn: PhysicalNode) => createFencingAgent(pn.metadata.name, pn.spec!.fencing!, opts.fencing));
  // Pacing only (not state): the earliest next attempt of a failing fence, per node.
  const nextAttempt = new Map<string, number>();
  // The cached VMs of each node, from one pass over the VMs per state of the cache (a pass per
  // node reconcile cost every VM each time: hack/bench-scale).
  let bound: { at: string; byNode: Map<string, VirtualNode[]> } | undefined;
  const boundTo = (cache: CacheReader, node: string): VirtualNode[] => {
    const at = cacheState(cache, ['VirtualNode']);
    if (at === undefined || bound?.at !== at) {
      const byNode = new Map<string, VirtualNode[]>();
      for (const vn of cache.list<VirtualNode>('VirtualNode')) {
        const n = vn.spec?.physicalNode;
        if (n === undefined) continue;
        const list = byNode.get(n);
        if (list) list.push(vn);
        else byNode.set(n, [vn]);
      }
      if (at === undefined) return byNode.get(node) ?? [];
      bound = { at, byNode };
    }
    return bound.byNode.get(node) ?? [];
  };

  return {
    name: HA_CONTROLLER_NAME,
    forKind: 'PhysicalNode',
    workers: 4,
    resyncMs: 30_000,
    timeoutMs: confirmTimeoutMs + 60_000,
    watches: [
      {
        kind: 'VirtualNode',
        // Only a VM's binding and deletion matter here, not its status writes (hack/bench-scale);
        // a VM gone altogether only lightens its node, which the resync sees.
        map: mapOnChange(undefined, (o) => [(o as VirtualNode).spec?.physicalNode, !!o.metadata.deletionTimestamp], (o) => {
          const n = (o as VirtualNode).spec?.physicalNode;
          return n ? [{ kind: 'PhysicalNode', name: n }] : [];
        }),
      },
    ],
    async reconcile(key: ObjectRef, ctx: ReconcileContext): Promise<ReconcileResult> {
      const cached = ctx.cache.get<PhysicalNode>({ kind: 'PhysicalNode', name: key.name });
      if (!cached?.spec || cached.metadata.deletionTimestamp) {
        nextAttempt.delete(key.name);
        return undefined;
      }
      const vcFromCache = (vn: VirtualNode) => ctx.cache.get<VirtualCluster>({ kind: 'VirtualCluster', name: vn.spec!.cluster, namespace: vn.metadata.namespace });
      const quick = planHa(haInput(cached, () => boundTo(ctx.cache, key.name), vcFromCache, graceMs, now()));
      if (quick.type === 'none') return quick.requeueAfterMs ? { requeueAfterMs: quick.requeueAfterMs } : undefined;

      // Act only on a fresh read from the store: the node first, then its VMs.
      const pn = await ctx.store.tryGet<PhysicalNode>({ kind: 'PhysicalNode', name: key.name });
      if (!pn?.spec || pn.metadata.deletionTimestamp) return undefined;
      const vns = (await ctx.store.list<VirtualNode>('VirtualNode')).items;
      const vcs = new Map<string, VirtualCluster>();
      for (const vc of (await ctx.store.list<VirtualCluster>('VirtualCluster')).items) vcs.set(`${vc.metadata.namespace}/${vc.metadata.name}`, vc);
      const vcOf = (vn: VirtualNode) => vcs.get(`${vn.metadata.namespace}/${vn.spec!.cluster}`);
      const d = planHa(haInput(pn, vns, vcOf, graceMs, now()));
      const gen = pn.metadata.generation ?? 0;

      switch (d.type) {
        case 'none':
          return d.requeueAfterMs ? { requeueAfterMs: d.requeueAfterMs } : undefined;
        case 'noAgent': {
          const prev = getCondition(pn.status?.conditions, FENCED);
          if (prev?.reason !== 'NoFencingAgent') {
            await ctx.store.updateStatus<PhysicalNode>({ ...pn, status: { ...pn.status, conditions: setCondition(pn.status?.conditions, { type: FENCED, status: 'False', reason: 'NoFencingAgent', message: d.message }, gen) } });
            ctx.events.record(pn, 'Warning', 'NoFencingAgent', d.message);
          }
          return { requeueAfterMs: retryMs };
        }
        case 'clear':
          await ctx.store.updateStatus<PhysicalNode>({ ...pn, status: { ...pn.status, conditions: setCondition(pn.status?.conditions, { type: FENCED, status: 'False', reason: d.reason, message: d.message }, gen) } });
          ctx.events.record(pn, 'Normal', 'Recovered', d.message);
          nextAttempt.delete(key.name);
          return undefined;
        case 'unbind':
          await unbind(ctx, pn, vns, d.unbind, undefined);
          return undefined;
        case 'fence': {
          const wait = (nextAttempt.get(key.name) ?? 0) - now();
          if (wait > 0) return { requeueAfterMs: wait };
          const confirmed = await fence(pn, ctx.signal);
          if (ctx.signal.aborted) return undefined;
          if (!confirmed.ok) {
            nextAttempt.set(key.name, now() + retryMs);
            const message = `fencing node ${pn.metadata.name} (agent ${pn.spec.fencing!.agent}) failed: ${confirmed.detail}; nothing is restarted, retrying in ${Math.round(retryMs / 1000)} s`;
            const prev = getCondition(pn.status?.conditions, FENCED);
            if (prev?.reason !== 'FencingFailed' || prev.message !== message) {
              await ctx.store.updateStatus<PhysicalNode>({ ...pn, status: { ...pn.status, conditions: setCondition(pn.status?.conditions, { type: FENCED, status: 'False', reason: 'FencingFailed', message }, gen) } });
            }
            ctx.events.record(pn, 'Warning', 'FencingFailed', message);
            ctx.log.warn({ node: pn.metadata.name, detail: confirmed.detail }, 'fencing failed');
            return { requeueAfterMs: retryMs };
          }
          nextAttempt.delete(key.name);
          // Cordon first (its own write: spec), then the condition and the unbinding in one batch.
          let cur = pn;
          if (!cur.spec!.unschedulable) cur = await ctx.store.update<PhysicalNode>({ ...cur, spec: { ...cur.spec!, unschedulable: true } });
          const message = `${d.message}; powered off by the ${pn.spec.fencing!.agent} agent (${confirmed.detail}); cordoned until uncordoned`;
          // The Fenced Event is written in that batch, not by the (asynchronous) recorder: a manager
          // killed right after the batch would lose it, and the next one sees the node Fenced and
          // has nothing left to record.
          await unbind(ctx, cur, vns, d.unbind, message);
          ctx.log.info({ node: pn.metadata.name, vms: d.unbind.length }, 'node fenced; its VMs are placed again');
          return undefined;
        }
      }
    },
  };

  /** Powers the node off and waits for the agent's status to say off. */
  async function fence(pn: PhysicalNode, signal: AbortSignal): Promise<{ ok: boolean; detail: string }> {
    let agent: FencingAgent;
    try {
      agent = agentFor(pn);
      await agent.powerOff(signal);
    } catch (e) {
      return { ok: false, detail: (e as Error).message };
    }
    const deadline = now() + confirmTimeoutMs;
    let last = '';
    for (;;) {
      const s = await agent.status(signal);
      if (s.state === 'off') return { ok: true, detail: s.detail };
      last = `the agent's status says ${s.state} (${s.detail})`;
      if (now() >= deadline || signal.aborted) return { ok: false, detail: last };
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** One batch: the node's Fenced condition (when `message`) and allocation, and the VMs unbound. */
async function unbind(ctx: ReconcileContext, pn: PhysicalNode, vns: readonly VirtualNode[], lost: readonly HaVm[], message: string | undefined): Promise<void> {
  const want = new Set(lost.map((v) => `${v.namespace}/${v.name}`));
  const targets = vns.filter((v) => want.has(`${v.metadata.namespace ?? 'default'}/${v.metadata.name}`) && v.spec?.physicalNode === pn.metadata.name);
  let allocated = pn.status?.allocated ?? ZERO;
  for (const v of targets) allocated = addUsage(allocated, vmUsage(v), -1);
  allocated = { cores: Math.max(0, allocated.cores), memoryMiB: Math.max(0, allocated.memoryMiB), vms: Math.max(0, allocated.vms) };
  const conditions = message
    ? setCondition(pn.status?.conditions, { type: FENCED, status: 'True', reason: 'Fenced', message }, pn.metadata.generation ?? 0)
    : pn.status?.conditions;
  const ops: BatchOp[] = [{ op: 'updateStatus', object: { ...pn, status: { ...pn.status, conditions, allocated } } }];
  if (message) ops.push(await fencedEventOp(ctx, pn, message));
  for (const v of targets) {
    const { physicalNode: _gone, ...spec } = v.spec!;
    ops.push({ op: 'update', object: { ...v, spec } });
  }
  await ctx.store.batch(ops);
  for (const v of targets) ctx.events.record(v, 'Normal', 'NodeFenced', `node ${pn.metadata.name} was fenced: ${v.metadata.name} is placed again and booted from its own disks`);
}

/**
 * The node's `Fenced` Event as a batch op (named and counted like controllers/events.ts does, so
 * `vcctl events` and `describe` show it like any other): created, or its count bumped.
 */
async function fencedEventOp(ctx: ReconcileContext, pn: PhysicalNode, message: string): Promise<BatchOp> {
  const involvedObject: EventSpec['involvedObject'] = { kind: 'PhysicalNode', name: pn.metadata.name };
  if (pn.metadata.uid) involvedObject.uid = pn.metadata.uid;
  const name = eventName(involvedObject, 'Normal', 'Fenced', message);
  const now = new Date().toISOString();
  const existing = await ctx.store.tryGet<EventObject>({ kind: 'Event', namespace: DEFAULT_NAMESPACE, name });
  if (existing?.spec) return { op: 'update', object: { ...existing, spec: { ...existing.spec, count: existing.spec.count + 1, lastTimestamp: now } } };
  const spec: EventSpec = { involvedObject, type: 'Normal', reason: 'Fenced', message, count: 1, firstTimestamp: now, lastTimestamp: now, source: HA_CONTROLLER_NAME };
  return { op: 'create', object: { apiVersion: API_VERSION, kind: 'Event', metadata: { name, namespace: DEFAULT_NAMESPACE }, spec } as EventObject };
}
