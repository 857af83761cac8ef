// The PhysicalNode controller (`nodes`): probes every node over its transport at an interval and
// keeps its status current: Ready (reasons Probed, Unreachable, HostKeyMismatch, NoHypervisor,
// StorageRootMissing), hypervisorVersion, observed cores and memory, and Events on Ready changes
// and when spec.capacity exceeds the real node. Consecutive failed probes are counted in memory
// (a new leader starts counting afresh, which only delays a NotReady verdict by one window).

import { isDeepStrictEqual } from 'node:util';
import type { PhysicalNode } from '../../api/types.js';
import type { ObjectRef } from '../../api/store/types.js';
import type { ControllerSpec, ReconcileContext, ReconcileResult } from '../../controllers/types.js';
import type { Transport } from '../../drivers/transport/types.js';
import { nextNodeStatus, probeNode } from './probe.js';
import { isConditionTrue } from '../../api/conditions.js';

export interface NodeControllerOptions {
  transports: { get(node: PhysicalNode): Transport; evict?(name: string): Promise<void> };
  /** Between probes of one node; default 30 s. */
  intervalMs?: number;
  /** Consecutive failed probes before Ready turns False; default 3. */
  failureThreshold?: number;
  /** One probe's time limit; default 10 s. */
  probeTimeoutMs?: number;
  /** Concurrent probes; default 4. */
  workers?: number;
  /**
   * Runs after a good probe of a node that is not Ready yet, before Ready turns True (high
   * availability: a fenced node's stale domains are stopped, reconcilers/ha/stale-domains.ts).
   * Returns what it did (for an Event); a throw keeps the node NotReady with its message.
   */
  beforeReady?: (node: PhysicalNode) => Promise<string[]>;
}

export const NODE_CONTROLLER_NAME = 'nodes';

export function nodeController(opts: NodeControllerOptions): ControllerSpec {
  const intervalMs = opts.intervalMs ?? 30_000;
  const failureThreshold = opts.failureThreshold ?? 3;
  const probeTimeoutMs = opts.probeTimeoutMs ?? 10_000;
  const failures = new Map<string, number>();
  const capacityWarnings = new Map<string, string>();

  return {
    name: NODE_CONTROLLER_NAME,
    forKind: 'PhysicalNode',
    workers: opts.workers ?? 4,
    // the requeue below is the probe interval; a resync only restarts a lost timer
    resyncMs: Math.max(intervalMs * 4, 60_000),
    timeoutMs: probeTimeoutMs + 30_000,
    async reconcile(key: ObjectRef, ctx: ReconcileContext): Promise<ReconcileResult> {
      const node = ctx.cache.get<PhysicalNode>({ kind: 'PhysicalNode', name: key.name });
      if (!node || node.metadata.deletionTimestamp || !node.spec) {
        failures.delete(key.name);
        capacityWarnings.delete(key.name);
        await opts.transports.evict?.(key.name);
        return undefined;
      }
      let probe = await probeNode(opts.transports.get(node), node.spec, { timeoutMs: probeTimeoutMs, signal: ctx.signal });
      if (ctx.signal.aborted) return undefined; // leadership lost or shutting down: no verdict
      if (opts.beforeReady && !probe.failure && !isConditionTrue(node.status?.conditions, 'Ready')) {
        try {
          const done = await opts.beforeReady(node);
          if (done.length > 0) ctx.events.record(node, 'Normal', 'StaleDomainsStopped', `stopped before the node is Ready again: ${done.join(', ')}`);
        } catch (e) {
          probe = { failure: { reason: 'Unreachable', message: `reachable, but its stale domains could not be stopped: ${(e as Error).message}` } };
        }
      }
      const d = nextNodeStatus(node, probe, {
        failures: failures.get(key.name) ?? 0,
        failureThreshold,
        lastCapacityWarning: capacityWarnings.get(key.name),
      });
      if (!sameStatus(node.status, d.status)) {
        await ctx.store.updateStatus<PhysicalNode>({ ...node, status: d.status });
      }
      // counted only once the status is written: a conflict retries the same probe number
      failures.set(key.name, d.failures);
      if (d.capacityWarning) capacityWarnings.set(key.name, d.capacityWarning);
      else capacityWarnings.delete(key.name);
      for (const e of d.events) ctx.events.record(node, e.type, e.reason, e.message);
      if (d.failures > 0) ctx.log.info({ node: key.name, failures: d.failures, reason: probe.failure?.reason }, 'probe failed');
      return { requeueAfterMs: intervalMs };
    },
  };
}

function sameStatus(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(a ?? {}, b ?? {});
}
