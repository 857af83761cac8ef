// The `migration` controller (key: Migration): carries out live migrations as the stored state
// machine of migration-plan.ts. It checks the request (the VM runs, the target is Ready, not
// cordoned, and has room), waits until the target node has the VM's tap and rules (the network
// controller prepares them for every pending Migration), has the source's hypervisor driver
// prepare the target (prepareMigration, when the driver has it), records Running (the clock of
// the migration's end to end time), and has the driver run the migration. On success the VirtualNode's binding and host move to the
// target and the hypervisor's downtime and total time are recorded; on failure the driver has left the VM
// running on the source and nothing on the target, and the Migration is Failed with the reason. A
// failure the driver settled (MigrationSettledError: Xen past its point of no return) says where
// the VM runs instead, and one started again from its disks is recorded as a new boot; a failure
// whose settling broke off (MigrationStrandedError) stays Running and is settled again (`settle`).
// Volumes that are mapped on one node at a time (VolumeActivation.needsHandOver: SAN snapshots)
// are made openable on the target before the transfer (prepareIncoming) and handed over while the
// domain waits paused on the target (a driver with pausedSwitchover, MigrateOptions.beforeResume),
// undone on the target when the migration fails before that (abortIncoming); other drivers refuse.
// A manager that dies in the middle finds the migration Running on its next reconcile and
// finishes or cleans up from what the two hosts show.

import type { Migration, MigrationStatus, PhysicalNode, VirtualCluster, VirtualNode } from '../../api/types.js';
import type { ObjectRef } from '../../api/store/types.js';
import { isConditionTrue, setCondition } from '../../api/conditions.js';
import type { ControllerSpec, ReconcileContext, ReconcileResult } from '../../controllers/types.js';
import { MigrationSettledError, MigrationStrandedError, STRANDED_DETAILS, SwitchoverError, type DomainInfo, type MigrationResult, type MigrationSettlement, type PreparedMigration } from '../../drivers/hypervisor/types.js';
import { writeStatusOver } from '../../api/status-writer.js';
import { HostNetworkDriver } from '../../drivers/network/host-network.js';
import { computeAllocation } from '../placement/allocation.js';
import type { BoundIndex } from '../placement/allocation-index.js';
import type { Usage } from '../placement/engine.js';
import { HypervisorDrivers, type TransportSource } from './hosts.js';
import { domainName } from '../../api/names.js';
import { MIGRATION_POLL_MS, planMigration, type HostDomainState, type SourceMigrationState } from './migration-plan.js';
import type { VolumeActivation } from './volume-activation.js';
import { progressWriter } from './migration-progress.js';
import { GUEST_READY } from './guest-ready.js';

/** Per-Migration bandwidth cap in bytes per second (overrides the manager's default). */
export const MAX_BANDWIDTH_ANNOTATION = 'virtualinux.org/migration-max-bandwidth';

export interface MigrationDeps {
  transports: TransportSource;
  drivers?: HypervisorDrivers;
  /** Concurrent migrations per node (as source or target); default 2. */
  maxPerNode?: number;
  /**
   * Reconcile workers (default 64). A transfer holds its worker from begin to end, so the workers
   * bound the migrations running at once in the whole cluster (maxPerNode bounds each node's): with
   * 4, a drain of 30 nodes ran 4 transfers at a time whatever the nodes could take; with 16, a
   * drain of 30 sim nodes (960 migrations, 60 transfers the nodes allowed at once) took 106 s, each
   * Migration waiting a median 60 s to begin and 0.8 s transferring; with 64, 50 s
   * (hack/bench-scale --sizes 300:3000, session 20). A waiting worker costs a pending promise.
   */
  workers?: number;
  /** Default 120 s. */
  timeoutMs?: number;
  /** Default 300 ms. */
  downtimeLimitMs?: number;
  maxBandwidthBytesPerSec?: number;
  /** The storage layer's per-node activation: a VC whose volumes it cannot hand over is refused. */
  volumes?: VolumeActivation;
  now?: () => number;
  /**
   * The cache's VMs and Migrations by node (the manager's shared cache): a target's allocation and
   * the migrations busy on its nodes from it. Without it, each reconcile goes over every VM and
   * Migration (a drain of 3,200 migrations at 10,000 VMs: hack/bench-scale).
   */
  index?: BoundIndex;
}

/** The hypervisor's own name, for messages. */
function hypervisorName(kind: string): string {
  return kind === 'qemu' ? 'QEMU' : kind === 'xen' ? 'Xen' : kind;
}

/** A switchover handover, tried 3 times (2 s apart): the domain waits paused meanwhile, with no way back. */
async function handOverRetried(fn: () => Promise<void>): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= 3) throw err;
      await new Promise((res) => setTimeout(res, 2000));
    }
  }
}

function ref(kind: string, name: string, namespace?: string): ObjectRef {
  return namespace ? { kind, name, namespace } : { kind, name };
}

function hostState(d: DomainInfo | undefined): HostDomainState {
  if (!d || d.state === 'shutoff') return 'absent';
  if (d.state === 'incoming') return 'incoming';
  if (d.state === 'paused') return 'paused';
  return 'running';
}

function sourceMigrationState(d: DomainInfo | undefined): SourceMigrationState {
  if (!d) return 'none';
  if (d.state === 'migrating') return 'active';
  // Xen's <name>--migratedaway with no xl migrate left, or its copy suspended by an xl migrate
  // that died before renaming it
  if (d.state === 'paused' && (STRANDED_DETAILS as readonly string[]).includes(d.detail ?? '')) return 'stranded';
  if (d.state === 'paused' && d.detail === 'postmigrate') return 'completed';
  return 'none';
}

/**
 * Why `target` cannot take `vn` now, or undefined. Placement's allocation of the target already
 * counts this migration's reservation (and every other one), so the check is that it fits.
 */
/** Why a VM on `source` cannot live-migrate to `target` for their hypervisor kinds, or undefined. */
export function crossKind(source: PhysicalNode | undefined, target: PhysicalNode | undefined): string | undefined {
  const from = source?.spec?.hypervisor;
  const to = target?.spec?.hypervisor;
  if (!from || !to || from === to) return undefined;
  return `hypervisor ${to}, the VM runs on ${from} node ${source!.metadata.name}: a live migration never crosses hypervisor kinds`;
}

export function refuseTarget(
  target: PhysicalNode | undefined, vn: VirtualNode, vc: VirtualCluster | undefined,
  usedOf: (node: string) => Usage, source?: PhysicalNode,
): string | undefined {
  if (!target?.spec) return 'no such PhysicalNode';
  const kinds = crossKind(source, target);
  if (kinds) return kinds;
  if (!isConditionTrue(target.status?.conditions, 'Ready')) return 'not Ready';
  if (target.spec.unschedulable) return 'cordoned';
  // (asked only here, past the cheap refusals: from an index, BoundIndex.allocation, or a pass over every VM)
  const used = usedOf(target.metadata.name);
  const cap = target.spec.capacity;
  if (used.memoryMiB > cap.memoryMiB) {
    return `insufficient memory (free ${cap.memoryMiB - used.memoryMiB + vn.spec!.memoryMiB} MiB, need ${vn.spec!.memoryMiB} MiB)`;
  }
  if (target.spec.maxVMs !== undefined && used.vms > target.spec.maxVMs) return `maxVMs ${target.spec.maxVMs} reached`;
  if (vc?.spec?.placement.mode === 'Strict' && used.cores > cap.cores) {
    return `insufficient cores (Strict: free ${cap.cores - used.cores + vn.spec!.vcpus}, need ${vn.spec!.vcpus})`;
  }
  return undefined;
}

export function migrationController(deps: MigrationDeps): ControllerSpec {
  const drivers = deps.drivers ?? new HypervisorDrivers(deps.transports);
  const now = deps.now ?? Date.now;
  const timeoutMs = deps.timeoutMs ?? 120_000;

  async function setStatus(ctx: ReconcileContext, m: Migration, s: MigrationStatus): Promise<Migration> {
    const fresh = (await ctx.store.tryGet<Migration>(ref('Migration', m.metadata.name, m.metadata.namespace))) ?? m;
    // A finished migration's outcome is final: a late reconcile never rewrites it.
    if (fresh.status?.phase === 'Succeeded' || fresh.status?.phase === 'Failed') return fresh;
    const status: MigrationStatus = { ...fresh.status, ...s, observedGeneration: fresh.metadata.generation ?? 0 };
    return ctx.store.updateStatus<Migration>({ ...fresh, status });
  }

  /** The Migration ends Failed with `message`, and a Warning Event (`reason`) says `why`. */
  async function fail(ctx: ReconcileContext, m: Migration, message: string, why: string, reason = 'MigrationFailed'): Promise<void> {
    await setStatus(ctx, m, { phase: 'Failed', completionTime: new Date(now()).toISOString(), message });
    ctx.events.record(m, 'Warning', reason, why);
  }

  async function recordHost(ctx: ReconcileContext, vnRef: ObjectRef, target: string): Promise<void> {
    // Where the VM runs now. The binding (spec.physicalNode) is placement's: it moves it to the
    // target once this Migration is Succeeded (placement/migration), and the runtime waits for that.
    // Over a fresh read on a Conflict: the runtime writes the same VirtualNode's status meanwhile
    // (hack/bench-scale found a migration that had moved the VM reported Failed by one).
    const vn = await ctx.store.get<VirtualNode>(vnRef);
    await writeStatusOver<VirtualNode>(ctx.store, vn, (cur) => ({ ...cur.status, host: target, phase: 'Running', message: `running on ${target}` }));
  }

  /**
   * A failed migration's settlement that started the VM again from its disks on `runsOn`: a new
   * boot, recorded as the runtime records its own starts (status.bootTime now, GuestReady waiting
   * for the guest to report in again: the READY seen before the migration was the old boot's). A
   * copy resumed with its memory is the same boot; a VM that runs nowhere is the runtime's to start
   * (it sees no domain).
   */
  async function recordSettlement(ctx: ReconcileContext, vnRef: ObjectRef, s: MigrationSettlement): Promise<void> {
    const host = s.runsOn;
    if (s.movedToTarget || s.memoryKept || !host) return;
    const vn = await ctx.store.get<VirtualNode>(vnRef);
    const at = new Date(now());
    await writeStatusOver<VirtualNode>(ctx.store, vn, (cur) => ({
      ...cur.status, host, phase: 'Running', message: `running on ${host}, started again from its disks`, bootTime: at.toISOString(),
      conditions: setCondition(cur.status?.conditions, {
        type: GUEST_READY, status: 'False', reason: 'Booting',
        message: `started again from its disks on ${host} after a failed migration (its memory state was lost): waiting for the guest to report in`,
      }, cur.metadata.generation ?? 0, at),
    }));
  }

  // The transfers this manager has decided to begin and not ended, by node (Migration uids): the
  // cache shows a begun one Running only after its status write, so workers deciding at once each
  // counted the others as not running and a node ran more than maxPerNode (three out of one node
  // in test/runtime/migration-concurrency.sim.test.ts).
  const beginning = new Map<string, Set<string>>();
  const hold = (uid: string, nodes: readonly string[]): void => {
    for (const n of nodes) {
      const set = beginning.get(n) ?? new Set<string>();
      set.add(uid);
      beginning.set(n, set);
    }
  };
  const release = (uid: string, nodes: readonly string[]): void => {
    for (const n of nodes) {
      const set = beginning.get(n);
      set?.delete(uid);
      if (set?.size === 0) beginning.delete(n);
    }
  };

  async function reconcile(key: ObjectRef, ctx: ReconcileContext): Promise<ReconcileResult> {
    // From the store, not the cache: the state machine must never act on a stale phase.
    const m = await ctx.store.tryGet<Migration>(key);
    if (!m?.spec || m.metadata.deletionTimestamp) return undefined;
    const phase = m.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return undefined;
    const ns = m.metadata.namespace;
    const vnRef = ref('VirtualNode', m.spec.virtualNode, ns);
    const vn = ctx.cache.get<VirtualNode>(vnRef);
    const vc = vn?.spec ? ctx.cache.get<VirtualCluster>(ref('VirtualCluster', vn.spec.cluster, ns)) : undefined;
    const target = ctx.cache.get<PhysicalNode>(ref('PhysicalNode', m.spec.targetNode));
    const source = phase === 'Running' ? m.status?.sourceNode : vn?.status?.host;
    const sourcePn = source ? ctx.cache.get<PhysicalNode>(ref('PhysicalNode', source)) : undefined;
    const name = domainName(ns, m.spec.virtualNode);

    let vmRefusal: string | undefined;
    if (!vn?.spec) vmRefusal = `VirtualNode ${m.spec.virtualNode} does not exist`;
    else if (vn.metadata.deletionTimestamp || !vc || vc.metadata.deletionTimestamp) vmRefusal = 'the VirtualNode is being deleted';
    // The runtime reports Migrating as soon as this Migration exists: that VM is running too.
    else if (vc.spec?.state !== 'Running' || !['Running', 'Migrating'].includes(vn.status?.phase ?? '')) vmRefusal = `the VM is not running (VC state ${vc.spec?.state}, node phase ${vn.status?.phase ?? 'Pending'})`;

    const srcDrv = sourcePn?.spec ? drivers.get(sourcePn) : undefined;
    // volumes handed over at the switchover need a driver that stops there (volume-activation.ts)
    const handOver = !!vc && !vmRefusal && deps.volumes?.needsHandOver?.(vc) === true;
    if (handOver && srcDrv && !srcDrv.pausedSwitchover) {
      vmRefusal = `its volumes must be handed over to the target at the switchover, and the ${hypervisorName(srcDrv.kind)} driver cannot stop there; suspend the VC and resume it on the other node instead`;
    }
    const tgtDrv = target?.spec ? drivers.get(target) : undefined;
    const srcInfo = srcDrv ? await srcDrv.get(name) : undefined;
    const tgtInfo = tgtDrv ? await tgtDrv.get(name) : undefined;
    const nodes = source ? [source, m.spec.targetNode] : [m.spec.targetNode];
    const busyUids = new Set((deps.index ? deps.index.migrationsAt(nodes) : ctx.cache.list<Migration>('Migration')).filter((o) =>
      o.metadata.uid !== m.metadata.uid && o.status?.phase === 'Running' &&
      [o.status.sourceNode, o.spec?.targetNode].some((n) => n === source || n === m.spec!.targetNode)).map((o) => o.metadata.uid));
    for (const n of nodes) for (const uid of beginning.get(n) ?? []) if (uid !== m.metadata.uid) busyUids.add(uid);
    const busy = busyUids.size;
    const index = deps.index;
    const usedOf = (node: string): Usage => (index ? index.allocation(node)
      : computeAllocation(node, ctx.cache.list<VirtualNode>('VirtualNode'), ctx.cache.list<Migration>('Migration')));

    const d = planMigration({
      phase, source, target: m.spec.targetNode,
      targetRefusal: vn?.spec ? refuseTarget(target, vn, vc, usedOf, sourcePn) : undefined,
      vmMigratable: vmRefusal === undefined, vmRefusal,
      sourceDomain: hostState(srcInfo), targetDomain: hostState(tgtInfo), sourceMigration: sourceMigrationState(srcInfo),
      busyOnNodes: busy, maxPerNode: deps.maxPerNode ?? 2,
      startedMs: m.status?.startTime ? Date.parse(m.status.startTime) : undefined, nowMs: now(), timeoutMs,
    });

    switch (d.action.type) {
      case 'none':
        if (m.status?.message !== d.message) await setStatus(ctx, m, { phase: phase ?? 'Pending', message: d.message });
        return d.requeueAfterMs ? { requeueAfterMs: d.requeueAfterMs } : undefined;
      case 'fail':
        await fail(ctx, m, d.action.why, d.action.why, 'MigrationRefused');
        return undefined;
      case 'begin': {
        const src = d.action.source;
        const tgt = d.action.target;
        // Held from this decision (no await since the count) until the transfer ends.
        const uid = m.metadata.uid ?? `${ns}/${m.metadata.name}`;
        hold(uid, [src, tgt]);
        try {
        if (!(await new HostNetworkDriver(tgtDrv!.transport).hasVm(name))) {
          if (m.status?.message !== `waiting for the network on ${tgt}`) await setStatus(ctx, m, { phase: 'Pending', message: `waiting for the network on ${tgt}` });
          // The network controller is adding the tap as this Migration appeared (one SSH round
          // trip away): look again soon, the check is a single cheap command.
          return { requeueAfterMs: 100 };
        }
        // QEMU's figures go into status.progress while it transfers (throttled; see migration-progress.ts).
        const progress = progressWriter((p) => setStatus(ctx, m, { phase: 'Running', progress: p }), { now });
        const cap = Number(m.metadata.annotations?.[MAX_BANDWIDTH_ANNOTATION]);
        const opts = {
          timeoutMs, downtimeLimitMs: deps.downtimeLimitMs ?? 300,
          maxBandwidthBytesPerSec: Number.isFinite(cap) && cap > 0 ? cap : deps.maxBandwidthBytesPerSec,
          onProgress: progress.sample,
        };
        // A driver that can prepares the target (QEMU: its process started and listening) while
        // the Migration is still Pending, so the fixed cost of a start is not on the migration's
        // clock. A manager that dies before recording Running leaves an incoming domain on the
        // target: the next preparation replaces it, and the orphan controller removes it if the
        // Migration goes away meanwhile (it wants the target of every unfinished Migration).
        // Volumes handed over at the switchover (SAN snapshots): made openable on the target
        // first; the handover itself runs while the domain waits paused on the target (beforeResume).
        const volumes = handOver ? deps.volumes! : undefined;
        const abortIncoming = async (): Promise<void> => {
          if (volumes) await volumes.abortIncoming?.(vc!, vn!, target!).catch((err: Error) => ctx.events.record(m, 'Warning', 'UnmapFailed', `undoing the incoming volumes on ${tgt}: ${err.message}`));
        };
        const migrateOpts = volumes ? { ...opts, beforeResume: () => handOverRetried(() => volumes.handOver!(vc!, vn!, sourcePn!, target!)) } : opts;
        let prepared: PreparedMigration | undefined;
        let r: MigrationResult;
        try {
          await volumes?.prepareIncoming?.(vc!, vn!, target!);
          prepared = await srcDrv!.prepareMigration?.(name, tgtDrv!, migrateOpts);
        } catch (err) {
          await abortIncoming();
          await progress.close();
          await fail(ctx, m, `${(err as Error).message}; the VM keeps running on ${src}`, (err as Error).message);
          return undefined;
        }
        const started = now();
        try {
          await setStatus(ctx, m, { phase: 'Running', sourceNode: src, startTime: new Date(started).toISOString(), message: `migrating from ${src} to ${tgt}` });
        } catch (err) {
          // Not recorded Running: nothing may transfer (a next manager would take it for Pending).
          await prepared?.abort().catch(() => undefined);
          await abortIncoming();
          await progress.close();
          throw err;
        }
        ctx.events.record(m, 'Normal', 'MigrationStarted', `live-migrating ${name} from ${src} to ${tgt}`);
        try {
          r = prepared ? await prepared.run() : await srcDrv!.migrate(name, tgtDrv!, migrateOpts);
        } catch (err) {
          await progress.close();
          if (err instanceof SwitchoverError) {
            // the domain is paused on the target, its copy on the source gone: no way back
            await recordHost(ctx, vnRef, tgt);
            await fail(ctx, m, err.message, err.message);
            return undefined;
          }
          if (err instanceof MigrationStrandedError) {
            // where the VM runs is not known yet (the target may hold it): nothing undone here;
            // the Migration stays Running and the plan settles it again from what both nodes show
            await setStatus(ctx, m, { phase: 'Running', message: err.message });
            ctx.events.record(m, 'Warning', 'MigrationStranded', err.message);
            return { requeueAfterMs: MIGRATION_POLL_MS };
          }
          await abortIncoming();
          if (err instanceof MigrationSettledError) {
            // settled by the driver: its message says where the VM runs (maybe started again)
            await recordSettlement(ctx, vnRef, err.settlement);
            await fail(ctx, m, err.message, err.message);
            return undefined;
          }
          // The driver's contract: the VM still runs on the source, nothing is left on the target.
          await fail(ctx, m, `${(err as Error).message}; the VM keeps running on ${src}`, (err as Error).message);
          return undefined;
        }
        // The VM runs on the target now: a failed write below is retried by the next reconcile
        // (the plan's `finish`), never reported as a failed migration.
        const last = await progress.close();
        await recordHost(ctx, vnRef, tgt);
        // the source's leftover mapping of the handed-over volumes
        if (volumes) await volumes.deactivate(vc!, vn!, sourcePn!).catch((err: Error) => ctx.events.record(m, 'Warning', 'UnmapFailed', `unmapping the volumes on ${src}: ${err.message}`));
        await setStatus(ctx, m, {
          ...(last ? { progress: last } : {}),
          phase: 'Succeeded', downtimeMs: r.downtimeMs, totalMs: r.totalMs, completionTime: new Date(now()).toISOString(),
          message: `moved to ${tgt}: downtime ${r.downtimeMs} ms, total ${r.totalMs} ms (${hypervisorName(srcDrv!.kind)}), end to end ${r.endToEndMs} ms${r.preparedMs !== undefined ? ` (the target prepared in ${r.preparedMs} ms before)` : ''}${r.transferredBytes > 0 ? `, ${Math.round(r.transferredBytes / 1048576)} MiB` : ''}`,
        });
        ctx.events.record(m, 'Normal', 'MigrationSucceeded', `${name} now runs on ${tgt}; downtime ${r.downtimeMs} ms`);
        return undefined;
        } finally {
          release(uid, [src, tgt]);
        }
      }
      case 'finish': {
        if (srcInfo) await srcDrv!.destroy(name);
        await recordHost(ctx, vnRef, d.action.target);
        await setStatus(ctx, m, { phase: 'Succeeded', completionTime: new Date(now()).toISOString(), message: `moved to ${d.action.target} (completed while no manager watched: ${srcDrv ? `${hypervisorName(srcDrv.kind)}'s` : 'the hypervisor\'s'} figures are not known)` });
        ctx.events.record(m, 'Normal', 'MigrationSucceeded', `${name} now runs on ${d.action.target}`);
        return undefined;
      }
      case 'settle': {
        const src = d.action.source;
        const tgt = d.action.target;
        if (!srcDrv?.settleMigration || !tgtDrv) {
          await fail(ctx, m, `the migration stopped past its point of no return on ${src} and ${tgtDrv ? `the ${hypervisorName(srcDrv?.kind ?? 'unknown')} driver cannot settle it` : `${tgt} is unknown`}: check both nodes`, 'stranded migration');
          return undefined;
        }
        const volumes = handOver ? deps.volumes! : undefined;
        let s: MigrationSettlement | undefined;
        try {
          s = await srcDrv.settleMigration(name, tgtDrv, volumes ? { beforeResume: () => handOverRetried(() => volumes.handOver!(vc!, vn!, sourcePn!, target!)) } : {});
        } catch (err) {
          if (!(err instanceof SwitchoverError)) throw err;
          await recordHost(ctx, vnRef, tgt);
          await fail(ctx, m, err.message, err.message);
          return undefined;
        }
        // settled meanwhile (another reconcile, or xl finished): look again
        if (!s) return { requeueAfterMs: MIGRATION_POLL_MS };
        if (s.movedToTarget) {
          await recordHost(ctx, vnRef, tgt);
          if (volumes) await volumes.deactivate(vc!, vn!, sourcePn!).catch((err: Error) => ctx.events.record(m, 'Warning', 'UnmapFailed', `unmapping the volumes on ${src}: ${err.message}`));
          await setStatus(ctx, m, { phase: 'Succeeded', completionTime: new Date(now()).toISOString(), message: `moved to ${tgt}: ${s.message} (figures not known)` });
          ctx.events.record(m, 'Normal', 'MigrationSucceeded', `${name} now runs on ${tgt}`);
          return undefined;
        }
        if (volumes) await volumes.abortIncoming?.(vc!, vn!, target!).catch((err: Error) => ctx.events.record(m, 'Warning', 'UnmapFailed', `undoing the incoming volumes on ${tgt}: ${err.message}`));
        await recordSettlement(ctx, vnRef, s);
        await fail(ctx, m, s.message, s.message);
        return undefined;
      }
      case 'abort': {
        if (srcDrv) await srcDrv.cancelMigration(name).catch(() => false);
        if (tgtDrv) await tgtDrv.destroy(name);
        await fail(ctx, m, `${d.action.why}; the VM keeps running on ${d.action.source}`, d.action.why);
        return undefined;
      }
    }
  }

  return {
    name: 'migration',
    forKind: 'Migration',
    workers: deps.workers ?? 64,
    timeoutMs: timeoutMs + 60_000,
    reconcile,
  };
}
