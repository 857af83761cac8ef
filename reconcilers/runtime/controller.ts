// The runtime controllers.
// - `runtime` (key: VirtualNode) realises each VirtualNode on the hypervisor of the node it is
//   bound to, in three steps: observe (observeRuntime: the VC's desired state, whether placement
//   settled, the node's volumes and network rules, where its domain is seen, a saved state on the
//   storage root and whether it still fits, an active Migration), plan once (plan.ts), then perform
//   the one action the plan returns through the node's driver and write the VirtualNode's phase, host,
//   address, `Running` condition (the hypervisor runs it) and `GuestReady` condition (the guest
//   inside reported in: guest-ready.ts). A restart is asked for with the annotation
//   `virtualinux.org/restart` (any new value; `vcctl restart`): the guest is powered off and booted
//   again on the same host with its disks (and the VirtualNode's current size), and the value is
//   recorded in status.restartedFor. A finalizer keeps the VirtualNode until its domain and saved
//   state are gone.
// - `runtime/orphans` (key: PhysicalNode) reports domains on a node that no VirtualNode wants and,
//   after a grace period, destroys them.

import type { Migration, OSTemplate, PhysicalNode, VirtualCluster, VirtualNode, VirtualNodeStatus, Volume } from '../../api/types.js';
import type { ObjectRef } from '../../api/store/types.js';
import { NotFoundError } from '../../api/store/types.js';
import { getCondition, isConditionTrue, setCondition, type ConditionInput } from '../../api/conditions.js';
import type { CacheReader, ControllerSpec, ReconcileContext, ReconcileResult } from '../../controllers/types.js';
import type { DomainSpec, HypervisorDriver } from '../../drivers/hypervisor/types.js';
import { HostNetworkDriver } from '../../drivers/network/host-network.js';
import { execOk } from '../../drivers/transport/types.js';
import { byIndex, mapOnChange } from '../../controllers/change-filter.js';
import { posix } from 'node:path';
import { macAddress, tapName } from '../network/host-plan.js';
import { vmAddress } from '../network/addresses.js';
import { virtualNodeOfDomain } from '../network/controller.js';
import { volumeFormat } from '../storage/plan.js';
import { HypervisorDrivers, savedStatePath, type TransportSource } from './hosts.js';
import { domainNameOf } from '../../api/names.js';
import { clusterSelector } from '../../api/labels.js';
import { ensureFinalizer, hasFinalizer, removeFinalizer } from '../../api/finalizers.js';
import { writeStatusOver } from '../../api/status-writer.js';
import { migrationController, type MigrationDeps } from './migration-controller.js';
import { SharedCache } from '../../controllers/cache.js';
import { BoundIndex } from '../placement/allocation-index.js';
import {
  bootedBy, currentDomain, failedStatus, planRuntime, RESTART_ANNOTATION, runtimeStatus, type ObservedDomain, type RuntimeAction, type RuntimeInput,
} from './plan.js';
import type { HolderFate, VolumeActivation } from './volume-activation.js';
import { liveState, nodeDomainSource } from './node-domains.js';
import { bootTimeoutMs, decideGuestReady, GUEST_READY, shouldProbeGuest, type GuestProbe, type GuestReadyDecision } from './guest-ready.js';

export const RUNTIME_FINALIZER = 'virtualinux.org/runtime';
export { RESTART_ANNOTATION } from './plan.js';

export interface RuntimeDeps {
  transports: TransportSource;
  drivers?: HypervisorDrivers;
  /**
   * How often the nodes that Running VMs are on are listed (a death is noticed within this:
   * node-domains.ts), and how often a Migrating VM is looked at; default 5 s.
   */
  pollMs?: number;
  /** How long a guest gets to power off before it is destroyed; default 30 s. */
  shutdownTimeoutMs?: number;
  /** How long an unwanted domain may live before it is stopped; default 60 s. */
  orphanGraceMs?: number;
  /** Maps a VM's volumes on the node that runs it (SAN drivers); absent: every node sees them. */
  volumes?: VolumeActivation;
  now?: () => number;
}

function ref(kind: string, name: string, namespace?: string): ObjectRef {
  return namespace ? { kind, name, namespace } : { kind, name };
}

/** The nodes a VM is bound to or on: the key of the informer index of the VMs by node. */
function vmNodes(vn: VirtualNode): string[] {
  const bound = vn.spec?.physicalNode;
  const host = vn.status?.host;
  return bound && host && bound !== host ? [bound, host] : bound ? [bound] : host ? [host] : [];
}

/** The VM a Migration moves, `<namespace>/<virtualnode>`: the key of the informer index migrationsOf reads. */
function migratedVm(m: Migration): string[] {
  return m.spec ? [`${m.metadata.namespace ?? ''}/${m.spec.virtualNode}`] : [];
}

/**
 * The Migrations of a VM, from an index of the Migrations by VM the cache's informer keeps
 * (byIndex): a map of every Migration by VM rebuilt per state of the Migrations (perCacheState)
 * was rebuilt on each Migration write of a drain (Migrations x writes: 2.2 GB of allocations in a
 * 10,000-VM bench-scale drain), and a list of the namespace's Migrations on every VM reconcile
 * before that cost VMs x Migrations.
 */
function migrationsOf(cache: CacheReader, vn: VirtualNode): Migration[] {
  return byIndex<Migration>(cache, 'Migration', 'virtualNode', migratedVm, `${vn.metadata.namespace ?? ''}/${vn.metadata.name}`);
}

/** A Migration neither finished (Succeeded, Failed) nor being deleted. */
function unfinished(m: Migration): boolean {
  return !m.metadata.deletionTimestamp && (m.status?.phase ?? 'Pending') !== 'Succeeded' && m.status?.phase !== 'Failed';
}

/** The Migration of this VirtualNode that is not finished, if any. */
export function activeMigration(cache: CacheReader, vn: VirtualNode): Migration | undefined {
  return migrationsOf(cache, vn).find(unfinished);
}

/** A Migration of this VirtualNode finished less than 30 s ago (its hosts may still be settling). */
export function recentlyMigrated(cache: CacheReader, vn: VirtualNode, nowMs: number): boolean {
  return recentMigration(cache, vn, nowMs) !== undefined;
}

/** The newest Migration of this VirtualNode that finished less than 30 s ago, if any. */
function recentMigration(cache: CacheReader, vn: VirtualNode, nowMs: number): Migration | undefined {
  let newest: { m: Migration; at: number } | undefined;
  for (const m of migrationsOf(cache, vn)) {
    const at = m.status?.completionTime ? Date.parse(m.status.completionTime) : NaN;
    if (nowMs - at < 30_000 && (!newest || at > newest.at)) newest = { m, at };
  }
  return newest?.m;
}

/** Where a finished Migration left its VM: the target when it succeeded, else the source. */
function settledHost(m: Migration | undefined): string | undefined {
  if (!m) return undefined;
  return m.status?.phase === 'Succeeded' ? m.spec?.targetNode : m.status?.sourceNode;
}

interface Gathered {
  vn: VirtualNode;
  vc: VirtualCluster | undefined;
  bound: PhysicalNode | undefined;
  domains: ObservedDomain[];
  volumes: { disk?: Volume; swap?: Volume; config?: Volume; shared?: Volume };
  sharedWanted: boolean;
  template: OSTemplate | undefined;
  ip: string | undefined;
}

function volumeReady(v: Volume | undefined): v is Volume {
  return !!v && v.status?.phase === 'Ready' && !!v.status.path;
}

/** The runtime controller's reconcile workers: VMs started (or looked at) at once. */
export const RUNTIME_WORKERS = 64;

export function runtimeController(cache: CacheReader, deps: RuntimeDeps): ControllerSpec {
  const drivers = deps.drivers ?? new HypervisorDrivers(deps.transports);
  const now = deps.now ?? Date.now;
  const vnsOfCluster = (namespace: string | undefined, cluster: string): ObjectRef[] =>
    cache
      .list<VirtualNode>('VirtualNode', { namespace, labelSelector: clusterSelector(cluster) })
      .map((vn) => ref('VirtualNode', vn.metadata.name, vn.metadata.namespace));
  // The VMs bound to or on each node, from an index the cache's informer keeps (byIndex): a map
  // rebuilt per state of the VirtualNodes, which every VM status write moves, was one pass over
  // every VM per node event.
  const vmsOnNode = (node: string): ObjectRef[] =>
    byIndex<VirtualNode>(cache, 'VirtualNode', 'node', vmNodes, node).map((vn) => ref('VirtualNode', vn.metadata.name, vn.metadata.namespace));

  async function observe(vn: VirtualNode, ctx: ReconcileContext): Promise<ObservedDomain[]> {
    const hosts = new Set<string>();
    if (vn.spec?.physicalNode) hosts.add(vn.spec.physicalNode);
    if (vn.status?.host) hosts.add(vn.status.host);
    const mig = activeMigration(ctx.cache, vn);
    if (mig?.spec) hosts.add(mig.spec.targetNode);
    const out: ObservedDomain[] = [];
    for (const h of hosts) {
      const pn = ctx.cache.get<PhysicalNode>(ref('PhysicalNode', h));
      if (!pn?.spec) continue;
      // Fenced (high availability): its agent confirmed it powered off; nothing runs there.
      if (isConditionTrue(pn.status?.conditions, 'Fenced')) continue;
      const info = await drivers.get(pn).get(domainNameOf(vn));
      const st = liveState(info);
      if (st && st !== 'shutoff') out.push({ host: h, state: st, vcpus: info?.vcpus, memoryMiB: info?.memoryMiB });
    }
    return out;
  }

  function gather(vn: VirtualNode, ctx: ReconcileContext): Omit<Gathered, 'domains'> {
    const ns = vn.metadata.namespace;
    const vc = ctx.cache.get<VirtualCluster>(ref('VirtualCluster', vn.spec!.cluster, ns));
    const bound = vn.spec?.physicalNode ? ctx.cache.get<PhysicalNode>(ref('PhysicalNode', vn.spec.physicalNode)) : undefined;
    const vol = (name: string) => ctx.cache.get<Volume>(ref('Volume', name, ns));
    const sharedWanted = !!vc?.spec?.sharedStorage && vc.spec.sharedStorage.filesystem !== 'none';
    return {
      vn, vc, bound,
      volumes: { disk: vol(`${vn.metadata.name}-disk`), swap: vol(`${vn.metadata.name}-swap`), config: vol(`${vn.metadata.name}-config`), shared: sharedWanted ? vol(`${vn.spec!.cluster}-shared`) : undefined },
      sharedWanted,
      template: vc?.spec ? ctx.cache.get<OSTemplate>(ref('OSTemplate', vc.spec.template)) : undefined,
      ip: vmAddress(vc, vn)?.ip,
    };
  }

  function domainSpec(g: Gathered): DomainSpec {
    const { vn, volumes, template } = g;
    const boot = template!.spec!.boot;
    const key = domainNameOf(vn);
    return {
      name: key,
      vcpus: vn.spec!.vcpus,
      memoryMiB: vn.spec!.memoryMiB,
      // No kernel: the firmware boots the boot loader installed in the image.
      boot: boot?.kernel ? { kernel: boot.kernel, initrd: boot.initrd, cmdline: boot.cmdline ?? 'console=ttyS0' } : undefined,
      disks: {
        root: { path: volumes.disk!.status!.path!, format: (volumeFormat(volumes.disk) as 'qcow2' | 'raw' | undefined) ?? 'qcow2' },
        swap: { path: volumes.swap!.status!.path!, format: 'raw' },
        config: { path: volumes.config!.status!.path!, format: 'raw' },
      },
      // Shared storage never reaches the guest through the hypervisor: the node serves it over NFS (network).
      network: g.ip ? { tap: tapName(key), mac: macAddress(key), ip: g.ip } : undefined,
    };
  }

  async function perform(a: RuntimeAction, g: Gathered, ctx: ReconcileContext): Promise<string | undefined> {
    const pn = (name: string): PhysicalNode => {
      const p = ctx.cache.get<PhysicalNode>(ref('PhysicalNode', name));
      if (!p) throw new Error(`PhysicalNode ${name} is gone`);
      return p;
    };
    const name = domainNameOf(g.vn);
    // The VM's volumes are mapped on exactly the node that runs it: before a start or resume
    // there (unmapped first where it ran before), unmapped once its domain is gone from there
    // (volume-activation.ts). A failed unmap does not fail the stop: the next start unmaps it.
    const holder = (h: string): HolderFate => {
      const p = ctx.cache.get<PhysicalNode>(ref('PhysicalNode', h));
      if (isConditionTrue(p?.status?.conditions, 'Fenced')) return 'takeOver';
      if (!p || !isConditionTrue(p.status?.conditions, 'Ready') || g.domains.some((d) => d.host === h)) return 'refuse';
      return { release: p };
    };
    const mapOn = async (host: string): Promise<void> => { if (g.vc) await deps.volumes?.activate(g.vc, g.vn, pn(host), holder); };
    const unmapOn = async (host: string): Promise<void> => {
      if (!g.vc || !deps.volumes) return;
      await deps.volumes.deactivate(g.vc, g.vn, pn(host)).catch((err: Error) =>
        ctx.events.record(g.vn, 'Warning', 'UnmapFailed', `unmapping the volumes on ${host}: ${err.message} (tried again before the next start)`));
    };
    switch (a.type) {
      case 'none':
        return undefined;
      case 'start':
        if (a.discardSavedState) {
          await perform({ type: 'discardSavedState' }, g, ctx);
          ctx.events.record(g.vn, 'Warning', 'SavedStateDiscarded', a.discardSavedState);
        }
        await mapOn(a.host);
        await drivers.get(pn(a.host)).create(domainSpec(g));
        ctx.events.record(g.vn, 'Normal', 'Started', `started on ${a.host}`);
        return a.host;
      case 'restart': {
        const drv = drivers.get(pn(a.host));
        const r = await drv.shutdown(name, { timeoutMs: deps.shutdownTimeoutMs ?? 30_000 });
        await drv.create(domainSpec(g));
        ctx.events.record(g.vn, 'Normal', 'Restarted', `restarted on ${a.host} (${g.vn.spec!.vcpus} vCPUs, ${g.vn.spec!.memoryMiB} MiB): ` +
          (r.clean ? 'the guest powered off and booted again' : 'the guest did not power off in time and was destroyed, then booted again'));
        return a.host;
      }
      case 'restore':
        await mapOn(a.host);
        await drivers.get(pn(a.host)).resume(domainSpec(g), savedStatePath(pn(a.host), g.vn));
        ctx.events.record(g.vn, 'Normal', 'Resumed', `resumed from disk on ${a.host}`);
        return a.host;
      case 'suspend': {
        const file = savedStatePath(pn(a.host), g.vn);
        const drv = drivers.get(pn(a.host));
        await execOk(drv.transport, ['mkdir', '-p', '--', posix.dirname(file)]);
        const r = await drv.suspend(name, file);
        await unmapOn(a.host);
        ctx.events.record(g.vn, 'Normal', 'Suspended', `saved ${Math.round(r.bytes / 1048576)} MiB to disk in ${r.durationMs} ms`);
        return undefined;
      }
      case 'shutdown': {
        const r = await drivers.get(pn(a.host)).shutdown(name, { timeoutMs: deps.shutdownTimeoutMs ?? 30_000 });
        await unmapOn(a.host);
        ctx.events.record(g.vn, r.clean ? 'Normal' : 'Warning', 'Stopped', r.clean ? 'the guest powered off' : 'the guest did not power off in time and was destroyed');
        return undefined;
      }
      case 'destroy':
        await drivers.get(pn(a.host)).destroy(name);
        await unmapOn(a.host);
        ctx.events.record(g.vn, 'Normal', 'Destroyed', `domain on ${a.host} destroyed: ${a.reason}`);
        return g.vn.status?.host === a.host ? undefined : g.vn.status?.host;
      case 'discardSavedState': {
        const host = g.bound ?? (g.vn.status?.host ? pn(g.vn.status.host) : undefined);
        if (host) await drivers.get(host).transport.exec(['rm', '-f', '--', savedStatePath(host, g.vn)]);
        return undefined;
      }
    }
  }

  /**
   * Everything the plan needs beyond the cache's view, observed before it runs: where the domain
   * is, whether a saved state exists and still fits its disk and size, and, when a boot is
   * possible, whether the VM's network rules are in place on its node.
   */
  async function observeRuntime(base: Omit<Gathered, 'domains'>, deleting: boolean, ctx: ReconcileContext): Promise<{ g: Gathered; input: RuntimeInput }> {
    const { vn, vc, bound } = base;
    const spec = vn.spec!;
    // Whether a migration is in flight is read before the hosts are observed: a migration that
    // ends while we look must not make its target look like a stray copy.
    const migratingBefore = !!activeMigration(ctx.cache, vn);
    const recent = recentMigration(ctx.cache, vn, now());
    const g: Gathered = { ...base, domains: await observe(vn, ctx) };
    const statePath = bound ? savedStatePath(bound, vn) : undefined;
    const savedState = bound && statePath ? (await drivers.get(bound).transport.exec(['test', '-e', statePath])).code === 0 : false;
    // Every volume Ready, and the VC's StorageReady too: while storage resets disks (an OSTemplate
    // update) the Volumes may still say Ready, and a VM must not start on a disk being replaced.
    const storageReady = volumeReady(g.volumes.disk) && volumeReady(g.volumes.swap) && volumeReady(g.volumes.config) &&
      (!g.sharedWanted || volumeReady(g.volumes.shared)) && !!g.template && isConditionTrue(vc?.status?.conditions, 'StorageReady');
    const desired = vc?.spec?.state ?? 'Stopped';
    const mayBoot = !deleting && desired === 'Running' && !!bound && storageReady && !g.domains.some((d) => d.state === 'running' || d.state === 'paused');
    // Fail closed: a VM boots only once its tap and isolation rules are in place on that node.
    const networkReady = !mayBoot || (!!base.ip && await new HostNetworkDriver(drivers.get(bound!).transport).hasVm(domainNameOf(vn)));
    const placed = vc?.status?.conditions?.find((c) => c.type === 'Placed');
    const restartWanted = vn.metadata.annotations?.[RESTART_ANNOTATION];
    const input: RuntimeInput = {
      boundHost: spec.physicalNode, desired, deleting, storageReady, networkReady,
      domains: g.domains, savedState, migrationActive: migratingBefore || !!activeMigration(ctx.cache, vn), migrationSettling: !!recent, settledOn: settledHost(recent),
      lastPhase: vn.status?.phase, lastHost: vn.status?.host, restarts: vn.status?.restarts ?? 0,
      lastFailureMs: vn.status?.lastFailureTime ? Date.parse(vn.status.lastFailureTime) : undefined, nowMs: now(),
      restartRequested: !!restartWanted && restartWanted !== vn.status?.restartedFor,
      placementSettled: placed?.status === 'True' && placed.observedGeneration === vc?.metadata.generation,
    };
    if (savedState && mayBoot) Object.assign(input, await observeSavedState(vn, vc, ctx));
    return { g, input };
  }

  /** Whether a saved state still fits: the size it was saved with, the disk it was saved over. */
  async function observeSavedState(vn: VirtualNode, vc: VirtualCluster | undefined, ctx: ReconcileContext): Promise<Pick<RuntimeInput, 'savedStateStale' | 'diskResetPending'>> {
    const spec = vn.spec!;
    let diskRevision: string | undefined;
    if (vn.status?.savedDiskRevision !== undefined) {
      // Read from the store, not the cache: the Volume informer may lag the VirtualCluster's
      // (resume) under load, and restoring memory onto a reset disk corrupts it. A template
      // revision the disk has not reached yet means a reset is still coming: wait for it.
      const fresh = await ctx.store.tryGet<Volume>(ref('Volume', `${vn.metadata.name}-disk`, vn.metadata.namespace));
      diskRevision = String(fresh?.status?.templateRevision ?? '');
      const tpl = vc?.spec ? await ctx.store.tryGet<OSTemplate>(ref('OSTemplate', vc.spec.template)) : undefined;
      if (tpl?.spec && fresh?.status?.templateRevision !== undefined && tpl.spec.revision !== fresh.status.templateRevision) {
        return { diskResetPending: `waiting for the disk's reset to template revision ${tpl.spec.revision}` };
      }
    }
    const saved = vn.status?.savedSize;
    if (saved && (saved.vcpus !== spec.vcpus || saved.memoryMiB !== spec.memoryMiB)) {
      // Resized while suspended: QEMU cannot load a saved state into a VM of another size, and
      // the new size is what placement counts now. Boot afresh with it.
      return { savedStateStale: { why: 'resized while suspended',
        event: `resized from ${saved.vcpus} vCPU, ${saved.memoryMiB} MiB to ${spec.vcpus} vCPU, ${spec.memoryMiB} MiB while suspended; the saved memory is of the old size, so the VM boots afresh` } };
    }
    if (diskRevision !== undefined && vn.status?.savedDiskRevision !== diskRevision) {
      // The OSTemplate was updated while the VM was suspended and its disk was reset: the saved
      // memory refers to the old disk and would corrupt the new one. Boot afresh instead.
      return { savedStateStale: { why: 'the disk was reset while suspended',
        event: `the disk was reset to template revision ${diskRevision} while suspended; the saved memory no longer matches it, so the VM boots afresh` } };
    }
    return {};
  }

  type WithSpec<T extends { spec?: unknown }> = T & { spec: NonNullable<T['spec']> };
  async function reconcile(key: ObjectRef, ctx: ReconcileContext): Promise<ReconcileResult> {
    const cached = ctx.cache.get<VirtualNode>(key);
    if (!cached?.spec) return undefined;
    let vn = cached as WithSpec<VirtualNode>;
    let base = gather(vn, ctx);
    const deleting = !!vn.metadata.deletionTimestamp || !base.vc || !!base.vc.metadata.deletionTimestamp;
    // Never bound nor run (no finalizer yet, no host): nothing of it is on a node, and nothing to
    // do until placement binds it (that spec change brings it back). A finalizer and a Pending
    // status written here raced placement's binding batch, each a conflict and a re-plan of its
    // VC (hack/bench-scale); its phase reads as Pending while unset.
    if (!vn.spec.physicalNode && !vn.status?.host && !hasFinalizer(vn, RUNTIME_FINALIZER) && !activeMigration(ctx.cache, vn)) return undefined;

    if (!deleting && !hasFinalizer(vn, RUNTIME_FINALIZER)) {
      // On with the object as written: returning to wait for its own update event put a new VM at
      // the back of the queue once more (~5 min a turn at 10,000 VMs: hack/bench-scale session 11).
      const written = await ensureFinalizer<VirtualNode>(ctx.store, key, RUNTIME_FINALIZER, vn);
      if (!written?.spec || written.metadata.deletionTimestamp) return undefined; // its event brings it back
      vn = written as WithSpec<VirtualNode>;
      base = gather(vn, ctx);
    }
    // A node that cannot be asked is not observed.
    if (vn.spec.physicalNode && !base.bound) return { requeueAfterMs: 5_000 };
    if (base.bound && !isConditionTrue(base.bound.status?.conditions, 'Ready')) {
      return writeStatus(ctx, vn, { phase: vn.status?.phase ?? 'Scheduled', message: `node ${base.bound.metadata.name} is not Ready` }, base.ip, 10_000);
    }
    if (base.bound && isConditionTrue(base.bound.status?.conditions, 'Fenced')) {
      return writeStatus(ctx, vn, { phase: 'Stopped', message: `node ${base.bound.metadata.name} is fenced: uncordon it to start the VM there again` }, base.ip, 30_000);
    }

    // Observe, plan once, act, write what the plan says.
    const { g, input } = await observeRuntime(base, deleting, ctx);
    const d = planRuntime(input);
    let host = currentDomain(input)?.host;
    if (d.action.type !== 'none') await ctx.progressing?.('Progressing', d.message);
    try {
      const after = await perform(d.action, g, ctx);
      if (d.action.type !== 'none') host = after;
    } catch (err) {
      ctx.events.record(vn, 'Warning', `${d.action.type[0]!.toUpperCase()}${d.action.type.slice(1)}Failed`, (err as Error).message);
      await writeStatus(ctx, vn, failedStatus(d, err as Error, host, vn.status, new Date(now()).toISOString()), base.ip);
      throw err;
    }
    if (d.unexpectedDeath) ctx.events.record(vn, 'Warning', 'DomainDied', d.message);
    const status = runtimeStatus(d, {
      host, domains: g.domains, previous: vn.status, size: { vcpus: vn.spec.vcpus, memoryMiB: vn.spec.memoryMiB },
      diskRevision: String(g.volumes.disk?.status?.templateRevision ?? ''), restartValue: vn.metadata.annotations?.[RESTART_ANNOTATION],
      nowIso: new Date(now()).toISOString(),
    });
    if (d.finalize) {
      await writeStatus(ctx, vn, status, base.ip);
      try {
        await removeFinalizer(ctx.store, key, RUNTIME_FINALIZER);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err; // gone between the read and the write: done
      }
      return undefined;
    }
    if (d.progressOnly) return writeStatus(ctx, vn, status, base.ip, d.requeueAfterMs);
    const phase = status.phase;
    const resumedReady = d.action.type === 'restore' && host ? vn.status?.savedGuestReady : undefined;
    const booted = bootedBy(d.action, host);
    const bootTime = status.bootTime ?? vn.status?.bootTime;
    const guest = await guestReadiness(g, phase, booted, resumedReady, host, bootTime, ctx);
    // A Running VM that settled is not polled: its node's list (node-domains.ts) queues it when
    // its domain stops running, and a change of it, its VC, volumes or node, or the resync, does.
    // Nor is a VM kept Stopped or Suspended with nothing left to do: a change of its VC's state
    // wakes it. Polled every 5 s, each Stopped VM cost its node three commands (the domain list,
    // the runtime directory, the saved state) forever: on a full test node (Xen under TCG) a
    // Stopped VC's one VM was a third of dom0's commands (VL_TRACE_EXEC, session 18).
    const settled = !input.migrationActive && !input.migrationSettling &&
      (phase === 'Running' || (d.action.type === 'none' && !input.deleting && input.desired !== 'Running'));
    let requeue: number | undefined = d.requeueAfterMs ??
      (settled ? undefined : phase === 'Running' || phase === 'Migrating' ? (deps.pollMs ?? 5_000) : d.action.type === 'none' ? 5_000 : 0);
    if (guest.requeueAfterMs !== undefined && requeue !== 0) requeue = Math.min(requeue ?? Infinity, guest.requeueAfterMs);
    let guestWritten = false;
    const result = await writeStatus(ctx, vn, status, base.ip, requeue, guest.condition, !booted, (w) => (guestWritten = w), bootTime);
    // Told only when the write took the finding (not undone as made on an older copy: writeStatus).
    if (guestWritten) guestEvents(g.vn, guest, ctx);
    return result;
  }

  function guestEvents(vn: VirtualNode, decision: GuestReadyDecision, ctx: ReconcileContext): void {
    const previous = getCondition(vn.status?.conditions, GUEST_READY);
    if (decision.timedOut) ctx.events.record(vn, 'Warning', 'BootTimeout', decision.condition!.message ?? 'boot timeout');
    if (decision.condition?.status === 'True' && previous?.status !== 'True') ctx.events.record(vn, 'Normal', 'GuestReady', decision.condition.message ?? '');
  }

  /** Decides GuestReady (guest-ready.ts), probing the guest when that can change it. */
  async function guestReadiness(g: Gathered, phase: VirtualNodeStatus['phase'], booted: boolean,
    resumedReady: VirtualNodeStatus['savedGuestReady'], host: string | undefined,
    bootTime: string | undefined, ctx: ReconcileContext): Promise<GuestReadyDecision> {
    const previous = getCondition(g.vn.status?.conditions, GUEST_READY);
    const p = phase ?? 'Pending';
    let probe: GuestProbe | undefined;
    const pn = host ? ctx.cache.get<PhysicalNode>(ref('PhysicalNode', host)) : undefined;
    if (pn?.spec && shouldProbeGuest(p, booted, previous)) probe = await probeGuest(drivers.get(pn), domainNameOf(g.vn), !!g.template?.spec?.guestAgent);
    const decision = decideGuestReady({
      phase: p, booted, resumedReady, previous, bootTimeMs: bootTime ? Date.parse(bootTime) : undefined, nowMs: now(),
      timeoutMs: bootTimeoutMs(g.vc?.spec?.node?.bootTimeout), probe,
    });
    return decision;
  }

  return {
    name: 'runtime',
    forKind: 'VirtualNode',
    // Only what observeRuntime reads of a VC or a Volume (controllers/change-filter.ts): each
    // other status write of a VC re-ran every one of its VMs, and each volume write its VM.
    watches: [
      { kind: 'VirtualCluster', map: mapOnChange(cache, (o) => {
        const vc = o as VirtualCluster;
        const placed = getCondition(vc.status?.conditions, 'Placed');
        // NetworkReady: a VM waiting for its network rules (fail closed) is woken when they are all in place.
        return [vc.metadata.uid, vc.metadata.generation, !!vc.metadata.deletionTimestamp, vc.status?.subnet,
          getCondition(vc.status?.conditions, 'StorageReady')?.status, placed?.status, placed?.observedGeneration,
          getCondition(vc.status?.conditions, 'NetworkReady')?.status];
      }, (vc) => vnsOfCluster(vc.metadata.namespace, vc.metadata.name)) },
      { kind: 'Volume', map: mapOnChange(cache, (o) => {
        const v = o as Volume;
        return [v.metadata.uid, v.metadata.generation, v.status?.phase, v.status?.path, v.status?.templateRevision, volumeFormat(v), !!v.metadata.deletionTimestamp];
      }, (v) => ((v as Volume).spec?.virtualNode ? [ref('VirtualNode', (v as Volume).spec!.virtualNode!, v.metadata.namespace)] : [])) },
      { kind: 'Migration', map: (m) => ((m as Migration).spec ? [ref('VirtualNode', (m as Migration).spec!.virtualNode, m.metadata.namespace)] : []) },
      // A node that turns Ready, not Ready, fenced or unfenced: the VMs bound to it or on it.
      { kind: 'PhysicalNode', map: mapOnChange(cache, (o) => {
        const pn = o as PhysicalNode;
        return [getCondition(pn.status?.conditions, 'Ready')?.status, getCondition(pn.status?.conditions, 'Fenced')?.status, !!pn.metadata.deletionTimestamp];
      }, (pn) => vmsOnNode(pn.metadata.name)) },
    ],
    sources: [nodeDomainSource(cache, drivers, deps.pollMs ?? 5_000, (vn) => !!activeMigration(cache, vn))],
    // Each reconcile mostly waits on its node (a command or two per step) and on the store. A
    // start holds its worker for the domain's creation, so the workers bound the VMs starting at
    // once in the whole cluster: with 16, at 10,000 VMs on 1,000 sim nodes each reconcile took
    // ~1.5 s under the manager's load and the runtime went through ~10 VMs a second, 8,200 of
    // them not yet looked at 150 s after all were placed (hack/bench-scale, session 15).
    workers: RUNTIME_WORKERS,
    timeoutMs: 5 * 60_000,
    reconcile,
  };
}

/**
 * Asks the guest whether it is up: its agent when the image has one (spec.guestAgent), else its
 * console's READY line. A probe that cannot reach the node finds nothing (the next one retries).
 */
async function probeGuest(drv: HypervisorDriver, name: string, agent: boolean): Promise<GuestProbe> {
  try {
    if (agent) {
      const r = await drv.pingGuestAgent?.(name, 1_500);
      return r ? { by: 'agent', ...r } : { by: 'none' };
    }
    const m = /VIRTUALINUX-READY[^\r\n]*/.exec((await drv.readConsole(name)).text);
    return m ? { by: 'console', line: m[0].trim() } : { by: 'none' };
  } catch {
    return { by: 'none' };
  }
}

async function writeStatus(ctx: ReconcileContext, vn: VirtualNode, s: VirtualNodeStatus, ip: string | undefined, requeueAfterMs?: number,
  guest?: ConditionInput, sameBoot = false, guestWritten?: (written: boolean) => void, decidedForBoot?: string): Promise<ReconcileResult> {
  // The status records what an action already did (a suspend's saved disk revision and size, a
  // start's boot time): a conflict with another writer of the object must not lose it, so the
  // runtime's own fields are written again over a fresh read (runtimeStatusOver).
  await writeStatusOver<VirtualNode>(ctx.store, vn, (current) => {
    const r = runtimeStatusOver(current, s, ip, guest, sameBoot, decidedForBoot);
    guestWritten?.(r.guestWritten);
    return r.status;
  });
  return requeueAfterMs !== undefined && requeueAfterMs > 0 ? { requeueAfterMs } : requeueAfterMs === 0 ? { requeueAfterMs: 50 } : undefined;
}

/**
 * The status the runtime stores over `current` (the stored copy): `s` over it, the Running
 * condition from `s`, and the GuestReady finding `guest` unless it is stale. Conditions other than
 * Running and GuestReady, and fields `s` does not set, are kept as stored. A finding about the same
 * boot (`sameBoot`) is stale when the stored guest is already ready (a probe decided on a cached
 * copy older than that finding: a resume's Resumed, say, then an agent answer does not undo it), or
 * when it was decided for another boot than the stored one (`decidedForBoot`, the status.bootTime
 * it counted from): a reconcile on a cached copy from before a restart declared the restarted
 * guest BootTimeout at once, counting from the boot that had died (live migrations in a loop on the testbed, session 22).
 */
export function runtimeStatusOver(current: VirtualNode, s: VirtualNodeStatus, ip: string | undefined, guest?: ConditionInput,
  sameBoot = false, decidedForBoot?: string): { status: VirtualNodeStatus; guestWritten: boolean } {
  const gen = current.metadata.generation ?? 0;
  const running = s.phase === 'Running';
  let conditions = setCondition(current.status?.conditions, {
    type: 'Running',
    status: running ? 'True' : 'False',
    reason: running ? 'DomainRunning' : (s.phase ?? 'Pending'),
    message: s.message ?? '',
  }, gen);
  // Not running (and not migrating): the guest cannot be ready either.
  const g = guest ?? (s.phase && s.phase !== 'Running' && s.phase !== 'Migrating' ? decideGuestReady({
    phase: s.phase, booted: false, previous: undefined, bootTimeMs: undefined, nowMs: 0, timeoutMs: 0,
  }).condition : undefined);
  const storedBoot = current.status?.bootTime;
  const otherBoot = sameBoot && decidedForBoot !== undefined && storedBoot !== undefined && storedBoot !== decidedForBoot;
  const keep = otherBoot || (sameBoot && s.phase === 'Running' && getCondition(current.status?.conditions, GUEST_READY)?.status === 'True');
  if (g && !keep) conditions = setCondition(conditions, g, gen);
  const status: VirtualNodeStatus = { ...current.status, ...s, ip, conditions, observedGeneration: gen };
  for (const k of Object.keys(status) as (keyof VirtualNodeStatus)[]) if (status[k] === undefined) delete status[k];
  return { status, guestWritten: !!guest && !keep };
}

/** Domains on a node that no VirtualNode wants are reported, then stopped after a grace period. */
export function orphanController(deps: RuntimeDeps): ControllerSpec {
  const drivers = deps.drivers ?? new HypervisorDrivers(deps.transports);
  const now = deps.now ?? Date.now;
  const firstSeen = new Map<string, number>();
  // Whether a node should have a domain: its VirtualNode (found by the domain's name) is bound to
  // or on that node, or an unfinished Migration of it goes there (migrationsOf, an index).
  const wants = (cache: CacheReader, node: string, domain: string): boolean => {
    const vn = virtualNodeOfDomain(cache, domain);
    if (!vn) return false;
    return vn.spec?.physicalNode === node || vn.status?.host === node || migrationsOf(cache, vn).some((m) => m.spec?.targetNode === node && unfinished(m));
  };
  // The destroyed domain's volumes are unmapped here (volume-activation.ts) when its VirtualNode
  // and VirtualCluster still exist (the VM runs, or is to run, elsewhere): a snapshot left mapped
  // here would refuse its start elsewhere and its removal. A VM already gone has no VC to name
  // its volumes by: nothing to unmap through the port.
  const unmapOrphan = async (domain: string, pn: PhysicalNode, ctx: ReconcileContext): Promise<void> => {
    if (!deps.volumes) return;
    const vn = virtualNodeOfDomain(ctx.cache, domain);
    const vc = vn?.spec && ctx.cache.get<VirtualCluster>(ref('VirtualCluster', vn.spec.cluster, vn.metadata.namespace));
    if (!vn || !vc) return;
    await deps.volumes.deactivate(vc, vn, pn).catch((err: Error) =>
      ctx.events.record(pn, 'Warning', 'UnmapFailed', `unmapping the volumes of destroyed domain ${domain}: ${err.message}`));
  };
  return {
    name: 'runtime/orphans',
    forKind: 'PhysicalNode',
    async reconcile(key: ObjectRef, ctx: ReconcileContext): Promise<ReconcileResult> {
      const pn = ctx.cache.get<PhysicalNode>(key);
      if (!pn?.spec || !isConditionTrue(pn.status?.conditions, 'Ready')) return { requeueAfterMs: 15_000 };
      const driver: HypervisorDriver = drivers.get(pn);
      // The node-domains round's list of this node, when recent (at most one poll old), says
      // whether the node has a domain nobody wants; only then is it listed afresh and that list
      // decided on: a recent list can hold a domain that moved since (a migration that completed
      // a moment ago), and read against today's cache it was an OrphanDomain false alarm (the
      // demo, session 18).
      let listed = await drivers.recentList(pn, deps.pollMs ?? 5_000);
      if (listed.some((d) => !wants(ctx.cache, pn.metadata.name, d.name))) listed = await drivers.recentList(pn, 0);
      for (const d of listed) {
        const id = `${pn.metadata.name}/${d.name}`;
        if (wants(ctx.cache, pn.metadata.name, d.name)) {
          firstSeen.delete(id);
          continue;
        }
        const seen = firstSeen.get(id);
        if (seen === undefined) {
          firstSeen.set(id, now());
          ctx.events.record(pn, 'Warning', 'OrphanDomain', `domain ${d.name} (${d.state}) runs here but no VirtualNode wants it; it is stopped after ${Math.round((deps.orphanGraceMs ?? 60_000) / 1000)} s`);
        } else if (now() - seen >= (deps.orphanGraceMs ?? 60_000)) {
          await driver.destroy(d.name);
          firstSeen.delete(id);
          ctx.events.record(pn, 'Warning', 'OrphanDestroyed', `destroyed domain ${d.name}: no VirtualNode wants it`);
          await unmapOrphan(d.name, pn, ctx);
        }
      }
      return { requeueAfterMs: 15_000 };
    },
  };
}

/** The runtime, orphan and migration controllers, sharing one hypervisor driver per node. */
export function runtimeControllers(cache: CacheReader, deps: RuntimeDeps & Omit<MigrationDeps, 'transports' | 'drivers' | 'now' | 'index'>): ControllerSpec[] {
  const shared = { ...deps, drivers: deps.drivers ?? new HypervisorDrivers(deps.transports) };
  // The manager's shared cache keeps the VMs and Migrations by node for the migration controller.
  const index = cache instanceof SharedCache ? BoundIndex.of(cache) : undefined;
  return [runtimeController(cache, shared), orphanController(shared), migrationController({ ...shared, index })];
}
