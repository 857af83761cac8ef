// The storage controller: for each VirtualCluster, observe (objects, volumes on the storage, the
// VC's configuration file), plan (plan.ts) and perform the actions through a StorageDriver, then
// plan again until nothing is left; finally write StorageReady and UpdatePending on the VC.
//
// Round trips: every driver call is one or more commands on the storage node over its Transport
// (an SSH round trip each). Observing a VC costs two whatever its size, and each stage of the plan
// is one action for all the VC's volumes of it, done through the driver's `...All` method (one
// command per stage with qcow2 and btrfs), so creating a VC takes a constant number of commands.
//
// StorageReady only turns False when the storage is not complete: a failure while looking at the
// storage or while keeping a complete one up to date (usage figures, vc.json) leaves a True one
// alone and is retried (see the catch in reconcile).
//
// Which node does the work: the SAN is shared, so any Ready PhysicalNode sees the storage root;
// the controller takes the first Ready, schedulable-or-not node in name order (deterministic, so
// consecutive reconciles use the same connection) and its spec.storageRoot.
//
// Bad input: a missing OSTemplate gives StorageReady=False/TemplateNotFound; a missing template
// image or a full storage gives StorageReady=False (TemplateNotFound / StorageFull) after rolling
// back what the attempt made: a VC that never was ready loses every volume (no half-made VC),
// a VC that was ready loses only the volumes this attempt added (its nodes' data is kept).

import { posix } from 'node:path';
import { setCondition, getCondition, type ConditionInput } from '../../api/conditions.js';
import type { ObjectRef } from '../../api/store/types.js';
import { AlreadyExistsError, NotFoundError } from '../../api/store/types.js';
import type { OSTemplate, PhysicalNode, VirtualCluster, VirtualNode, Volume } from '../../api/types.js';
import type { ControllerSpec, ReconcileContext, ReconcileResult } from '../../controllers/types.js';
import { createStorageDriver, type DriverOptions } from '../../drivers/storage/index.js';
import { eachKey, ensureDir, removePath, vcStorageDir } from '../../drivers/storage/file-volumes.js';
import type { StorageDriver, TemplateSource, VolumeInfo, VolumeKey } from '../../drivers/storage/types.js';
import { StorageFullError, TemplateNotFoundError } from '../../drivers/storage/types.js';
import type { Transport } from '../../drivers/transport/types.js';
import { clusterAddresses, gatewayAddress } from '../network/addresses.js';
import { buildConfigDisk, buildConfigVars, type NodeConfigInput } from './config-disk.js';
import {
  CLUSTER_LABEL,
  CONFIG_REVISION_ANNOTATION,
  FORMAT_ANNOTATION,
  STORAGE_FINALIZER,
  STORAGE_READY,
  desiredVolumes,
  driverOf,
  planStorage,
  volumeBytes,
  type StorageAction,
  type StorageObservation,
} from './plan.js';

export const STORAGE_CONTROLLER = 'storage';
const ACTIVE_PHASES = new Set(['Running', 'Starting', 'Migrating', 'Suspending']);
const MAX_PASSES = 8;
/** How long a VC rests after a rolled-back attempt (unless its spec or template changes). */
const ROLLBACK_HOLD_MS = 60_000;

export interface StorageControllerOptions {
  /** The transport of a PhysicalNode (a TransportCache in the manager). */
  transports: { get(node: PhysicalNode): Transport };
  driverOptions?: DriverOptions;
  /** How often Volume.status.bytesUsed is refreshed; default 60 s. */
  usageIntervalMs?: number;
  /** Test hook: runs before every action; a throw stops the reconcile there (crash injection). */
  beforeAction?: (a: StorageAction, vc: VirtualCluster) => void | Promise<void>;
}

export function storageController(opts: StorageControllerOptions): ControllerSpec {
  const r = new StorageReconciler(opts);
  return {
    name: STORAGE_CONTROLLER,
    forKind: 'VirtualCluster',
    owns: ['Volume'],
    watches: [
      { kind: 'OSTemplate', map: (t) => r.clustersUsing(t.metadata.name) },
      { kind: 'VirtualNode', map: (vn) => clusterOf(vn as VirtualNode) },
      { kind: 'PhysicalNode', map: () => r.allClusters() },
    ],
    // The first original of a large template is a full copy: give it time.
    timeoutMs: 60 * 60_000,
    reconcile: (key, ctx) => r.reconcile(key, ctx),
  };
}

function clusterOf(vn: VirtualNode): ObjectRef[] {
  const c = vn.metadata.labels?.[CLUSTER_LABEL] ?? vn.spec?.cluster;
  return c ? [{ kind: 'VirtualCluster', namespace: vn.metadata.namespace, name: c }] : [];
}

/** The node that does the storage work: the first Ready PhysicalNode by name. */
export function pickStorageNode(nodes: readonly PhysicalNode[]): PhysicalNode | undefined {
  return [...nodes]
    .filter((n) => n.spec?.storageRoot && getCondition(n.status?.conditions, 'Ready')?.status === 'True')
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name, 'en', { numeric: true }))[0];
}

interface Env {
  ctx: ReconcileContext;
  vc: VirtualCluster;
  driver: StorageDriver;
  transport: Transport;
  vcDir: string;
  storageRoot: string;
}

export class StorageReconciler {
  private lastUsage = new Map<string, number>();
  /**
   * After a rollback (full storage, missing image) the VC is left alone for a while unless its
   * spec or its template changes; otherwise the status write of the rollback itself would start
   * the next attempt at once.
   */
  private holdOff = new Map<string, { until: number; generation?: number; templateRv?: string }>();
  private cacheRef: ReconcileContext['cache'] | undefined;
  constructor(private readonly opts: StorageControllerOptions) {}

  clustersUsing(template: string): ObjectRef[] {
    return (this.cacheRef?.list<VirtualCluster>('VirtualCluster') ?? [])
      .filter((vc) => vc.spec?.template === template)
      .map((vc) => ({ kind: 'VirtualCluster', namespace: vc.metadata.namespace, name: vc.metadata.name }));
  }
  allClusters(): ObjectRef[] {
    return (this.cacheRef?.list<VirtualCluster>('VirtualCluster') ?? []).map((vc) => ({
      kind: 'VirtualCluster', namespace: vc.metadata.namespace, name: vc.metadata.name,
    }));
  }

  async reconcile(key: ObjectRef, ctx: ReconcileContext): Promise<ReconcileResult> {
    this.cacheRef = ctx.cache;
    let vc = await ctx.store.tryGet<VirtualCluster>(key);
    if (!vc) return undefined;
    const node = pickStorageNode(ctx.cache.list<PhysicalNode>('PhysicalNode'));
    if (!node) {
      if (!vc.metadata.deletionTimestamp) {
        await this.writeConditions(ctx, key, [{ type: STORAGE_READY, status: 'False', reason: 'NoStorageNode', message: 'no Ready PhysicalNode with a storageRoot to do the storage work on' }]);
      }
      return { requeueAfterMs: 10_000 };
    }
    const templateRv = (): string | undefined =>
      ctx.cache.get<OSTemplate>({ kind: 'OSTemplate', name: vc!.spec!.template })?.metadata.resourceVersion;
    const hold = this.holdOff.get(vc.metadata.uid!);
    if (hold && !vc.metadata.deletionTimestamp) {
      const wait = hold.until - Date.now();
      if (wait > 0 && hold.generation === vc.metadata.generation && hold.templateRv === templateRv()) return { requeueAfterMs: wait };
      this.holdOff.delete(vc.metadata.uid!);
    }
    const transport = this.opts.transports.get(node);
    const storageRoot = node.spec!.storageRoot;
    const driver = createStorageDriver(driverOf(vc), transport, this.opts.driverOptions);
    const env: Env = {
      ctx, vc, driver, transport, storageRoot,
      vcDir: vcStorageDir(storageRoot, vc.metadata.namespace ?? 'default', vc.metadata.name, vc.metadata.uid!),
    };
    const readyAtStart = new Set(
      (await this.volumesOf(env)).filter((v) => v.status?.phase === 'Ready').map((v) => v.metadata.name),
    );
    // vc.json is written only once every volume was Ready: its presence marks a VC that was
    // complete at least once, whose Ready volumes (the nodes' data) a rollback must keep.
    let wasEverReady: boolean | undefined;
    // Whether the plan being carried out says the storage is complete (undefined: none yet).
    let planReady: boolean | undefined;

    let conditions: ConditionInput[] = [];
    let requeueAfterMs: number | undefined;
    try {
      for (let pass = 0; pass < MAX_PASSES; pass++) {
        planReady = undefined;
        const obs = await this.observe(env);
        wasEverReady ??= obs.vcConfigCurrent !== undefined;
        const plan = planStorage(obs);
        conditions = plan.conditions;
        requeueAfterMs = plan.requeueAfterMs;
        planReady = plan.conditions.find((c) => c.type === STORAGE_READY)?.status === 'True';
        if (plan.actions.length === 0) break;
        for (const a of plan.actions) {
          if (ctx.signal.aborted) throw new Error('reconcile aborted', { cause: ctx.signal.reason });
          await this.opts.beforeAction?.(a, env.vc);
          const gone = await this.apply(env, a, obs);
          if (gone) return undefined; // finalizer removed: the VC is gone
        }
        env.vc = (await ctx.store.tryGet<VirtualCluster>(key)) ?? env.vc;
      }
    } catch (e) {
      if (e instanceof StorageFullError || e instanceof TemplateNotFoundError) {
        wasEverReady ??= (await transport.exec(['test', '-e', posix.join(env.vcDir, 'vc.json')])).code === 0;
        await this.rollBack(env, wasEverReady ? readyAtStart : undefined);
        this.holdOff.set(vc.metadata.uid!, { until: Date.now() + ROLLBACK_HOLD_MS, generation: vc.metadata.generation, templateRv: templateRv() });
        const reason = e instanceof StorageFullError ? 'StorageFull' : 'TemplateNotFound';
        ctx.events.record(env.vc, 'Warning', reason, e.message);
        await this.writeConditions(ctx, key, [{ type: STORAGE_READY, status: 'False', reason, message: `${e.message} (rolled back the volumes this attempt made)` }]);
        return { requeueAfterMs: ROLLBACK_HOLD_MS };
      }
      // A failure says the storage is not ready only when it hit the work of making it ready. One
      // that hit looking at the storage (a lost SSH session, say) or upkeep of a complete storage
      // (vc.json, usage figures) leaves a True StorageReady alone: nothing on the storage changed,
      // and the retry (with backoff) looks again. Otherwise a busy node's transient failures made
      // StorageReady flap, and the runtime refuses to start VMs while it is not True.
      const reason = (e as { storageReason?: string }).storageReason ?? 'StorageError';
      const wasTrue = getCondition(env.vc.status?.conditions, STORAGE_READY)?.status === 'True';
      if (!env.vc.metadata.deletionTimestamp && !(wasTrue && planReady !== false)) {
        await this.writeConditions(ctx, key, [{ type: STORAGE_READY, status: 'False', reason, message: (e as Error).message }]).catch(() => undefined);
      }
      throw e;
    }
    if (conditions.length > 0) await this.writeConditions(ctx, key, conditions);
    return requeueAfterMs !== undefined ? { requeueAfterMs } : { requeueAfterMs: this.opts.usageIntervalMs ?? 60_000 };
  }

  private async volumesOf(env: Env): Promise<Volume[]> {
    const { vc } = env;
    const list = await env.ctx.store.list<Volume>('Volume', {
      namespace: vc.metadata.namespace,
      labelSelector: `${CLUSTER_LABEL}=${vc.metadata.name}`,
    });
    return list.items.filter((v) => v.metadata.ownerReferences?.some((o) => o.uid === vc.metadata.uid));
  }

  private key(env: Env, name: string): VolumeKey {
    return { vcDir: env.vcDir, vcUid: env.vc.metadata.uid!, name };
  }

  private subnetOf(vc: VirtualCluster): string | undefined {
    return vc.spec?.network?.subnet ?? vc.status?.subnet;
  }

  private nodeConfig(env: Env, index: number): NodeConfigInput {
    const vc = env.vc;
    const subnet = this.subnetOf(vc)!;
    const peers = clusterAddresses(subnet, vc.spec!.nodes);
    const shared = vc.spec!.sharedStorage;
    return {
      vcName: vc.metadata.name,
      namespace: vc.metadata.namespace ?? 'default',
      nodeName: `${vc.metadata.name}-${index}`,
      index,
      ip: peers[index]!,
      subnet,
      gateway: gatewayAddress(subnet),
      peers,
      hasShared: !!shared && shared.filesystem !== 'none',
      sharedNfs: shared?.filesystem === 'nfs',
      ...(vc.spec!.firstBoot?.script !== undefined ? { firstBootScript: vc.spec!.firstBoot.script } : {}),
    };
  }

  private async observe(env: Env): Promise<StorageObservation> {
    const { vc, ctx, driver } = env;
    const template = ctx.cache.get<OSTemplate>({ kind: 'OSTemplate', name: vc.spec!.template })
      ?? (await ctx.store.tryGet<OSTemplate>({ kind: 'OSTemplate', name: vc.spec!.template }));
    const volumes = await this.volumesOf(env);
    const names = [...new Set([...volumes.map((v) => v.metadata.name), ...desiredVolumes(vc).map((d) => d.name)])];
    // Two round trips to the storage node, whatever the size of the VC.
    const [exist, cur] = await Promise.all([
      driver.existsAll(names.map((n) => this.key(env, n))),
      env.transport.exec(['cat', '--', posix.join(env.vcDir, 'vc.json')]),
    ]);
    const present = Object.fromEntries(names.map((n, i) => [n, exist[i] === true]));
    const vmsActive = ctx.cache
      .list<VirtualNode>('VirtualNode', { namespace: vc.metadata.namespace, labelSelector: `${CLUSTER_LABEL}=${vc.metadata.name}` })
      .some((vn) => ACTIVE_PHASES.has(vn.status?.phase ?? ''));
    const subnet = this.subnetOf(vc);
    const configRevisions: Record<number, string> = {};
    if (subnet && !vc.metadata.deletionTimestamp) {
      for (let i = 0; i < vc.spec!.nodes; i++) configRevisions[i] = buildConfigVars(this.nodeConfig(env, i)).VC_CONFIG_REVISION!;
    }
    const now = Date.now();
    const usageDue = now - (this.lastUsage.get(vc.metadata.uid!) ?? 0) >= (this.opts.usageIntervalMs ?? 60_000);
    return {
      vc, template, volumes, present, vmsActive, subnet, configRevisions,
      vcConfigCurrent: cur.code === 0 ? cur.stdout : undefined,
      vcConfigDesired: template ? this.vcConfig(env, template, volumes) : undefined,
      usageDue,
    };
  }

  /** Stage 5: the VC's static information, on the storage root beside its volumes. */
  private vcConfig(env: Env, template: OSTemplate, volumes: Volume[]): string {
    const vc = env.vc;
    const path = (n: string): string | undefined => volumes.find((v) => v.metadata.name === n)?.status?.path;
    const subnet = this.subnetOf(vc);
    const ips = subnet ? clusterAddresses(subnet, vc.spec!.nodes) : [];
    const doc = {
      apiVersion: 'virtualinux.org/v1alpha1',
      kind: 'VirtualClusterStorage',
      name: vc.metadata.name,
      namespace: vc.metadata.namespace,
      uid: vc.metadata.uid,
      template: { name: template.metadata.name, revision: template.spec!.revision },
      driver: driverOf(vc),
      subnet: subnet ?? null,
      gateway: subnet ? gatewayAddress(subnet) : null,
      node: vc.spec!.node,
      original: path(`${vc.metadata.name}-original`) ?? null,
      shared: vc.spec!.sharedStorage ? { ...vc.spec!.sharedStorage, path: path(`${vc.metadata.name}-shared`) ?? null } : null,
      nodes: Array.from({ length: vc.spec!.nodes }, (_, i) => {
        const vn = `${vc.metadata.name}-${i}`;
        return { name: vn, index: i, ip: ips[i] ?? null, disk: path(`${vn}-disk`) ?? null, swap: path(`${vn}-swap`) ?? null, config: path(`${vn}-config`) ?? null };
      }),
    };
    return `${JSON.stringify(doc, null, 2)}\n`;
  }

  /** Performs one action. Returns true when the VC is gone (finalizer removed). */
  private async apply(env: Env, a: StorageAction, obs: StorageObservation): Promise<boolean> {
    const { ctx, driver } = env;
    const vcName = env.vc.metadata.name;
    const originalKey = this.key(env, `${vcName}-original`);
    switch (a.type) {
      case 'addFinalizer':
      case 'removeFinalizer': {
        const vc = await ctx.store.get<VirtualCluster>(refOf(env.vc));
        const fin = (vc.metadata.finalizers ?? []).filter((f) => f !== STORAGE_FINALIZER);
        if (a.type === 'addFinalizer') fin.push(STORAGE_FINALIZER);
        vc.metadata.finalizers = fin;
        try {
          env.vc = await ctx.store.update(vc);
        } catch (e) {
          if (a.type === 'removeFinalizer' && e instanceof NotFoundError) return true;
          throw e;
        }
        return a.type === 'removeFinalizer';
      }
      case 'createObjects':
        for (const v of a.volumes) {
          try {
            await ctx.store.create(v);
          } catch (e) {
            if (!(e instanceof AlreadyExistsError)) throw e;
          }
        }
        return false;
      case 'provision': {
        const keys = a.names.map((n) => this.key(env, n));
        const spec = env.vc.spec!;
        let infos: VolumeInfo[];
        let templateRevision: number | undefined;
        try {
          switch (a.role) {
            case 'original':
              infos = await eachKey(keys, (k) => driver.createOriginal(k, templateSource(obs.template!)));
              templateRevision = obs.template!.spec!.revision;
              break;
            case 'snapshot':
              infos = await driver.snapshotAll(originalKey, keys);
              templateRevision = obs.volumes.find((v) => v.metadata.name === originalKey.name)?.status?.templateRevision;
              break;
            case 'swap':
              infos = await driver.createSwapAll(keys, spec.node.swapMiB * 1024 * 1024);
              break;
            case 'shared': {
              const fs = spec.sharedStorage!.filesystem === 'ocfs2' ? 'ocfs2' : 'nfs';
              infos = await eachKey(keys, (k) => driver.createShared(k, volumeBytes(spec.sharedStorage!.sizeGiB), fs));
              break;
            }
            default:
              throw new Error(`cannot provision a ${a.role} volume this way`);
          }
        } catch (e) {
          if (e instanceof Error && !(e instanceof StorageFullError) && !(e instanceof TemplateNotFoundError)) {
            (e as { storageReason?: string }).storageReason = a.role === 'snapshot' ? 'SnapshotFailed' : a.role === 'original' ? 'OriginalFailed' : 'VolumeFailed';
          }
          throw e;
        }
        await this.markReady(env, a.names, infos, templateRevision);
        if (a.role === 'original') ctx.events.record(env.vc, 'Normal', 'OriginalCreated', `original volume ${infos[0]!.path} made from OSTemplate ${obs.template!.metadata.name} revision ${templateRevision}`);
        return false;
      }
      case 'reset': {
        const info = await driver.reset(originalKey, this.key(env, a.name));
        const rev = obs.volumes.find((v) => v.metadata.name === originalKey.name)?.status?.templateRevision;
        await this.markReady(env, [a.name], [info], rev);
        return false;
      }
      case 'writeConfig': {
        const disks = a.volumes.map((v) => buildConfigDisk(this.nodeConfig(env, v.index)));
        const infos = await driver.writeConfigAll(a.volumes.map((v, i) => ({ key: this.key(env, v.name), bytes: disks[i]!.bytes })));
        await this.markReady(env, a.volumes.map((v) => v.name), infos, undefined, disks.map((d) => d.revision));
        return false;
      }
      case 'invalidate':
        for (const name of a.names) {
          await driver.remove(this.key(env, name));
          await this.setStatus(env, name, { phase: 'Pending' });
        }
        return false;
      case 'remove':
        await this.removeVolumes(env, a.names);
        return false;
      case 'writeVcConfig':
        await ensureDir(env.transport, env.vcDir);
        await env.transport.writeFile(posix.join(env.vcDir, 'vc.json'), obs.vcConfigDesired!, 0o644);
        return false;
      case 'removeVcDir':
        await removePath(env.transport, env.vcDir);
        return false;
      case 'refreshUsage': {
        this.lastUsage.set(env.vc.metadata.uid!, Date.now());
        const ready = obs.volumes.filter((v) => v.status?.phase === 'Ready');
        const used = await driver.usageAll(ready.map((v) => this.key(env, v.metadata.name)));
        for (const [i, v] of ready.entries()) {
          if (used[i] !== v.status!.bytesUsed) await this.setStatus(env, v.metadata.name, { ...v.status, bytesUsed: used[i] });
        }
        return false;
      }
      case 'event':
        ctx.events.record(env.vc, a.eventType, a.reason, a.message);
        return false;
    }
  }

  /** Marks volumes Ready at the paths the driver returned, with their usage (one driver call). */
  private async markReady(env: Env, names: string[], infos: VolumeInfo[], templateRevision?: number, configRevisions?: string[]): Promise<void> {
    const used = await env.driver.usageAll(names.map((n) => this.key(env, n)));
    for (const [i, name] of names.entries()) {
      const info = infos[i]!;
      const ref = { kind: 'Volume', namespace: env.vc.metadata.namespace, name };
      const v = await env.ctx.store.get<Volume>(ref);
      const ann: Record<string, string> = { ...(v.metadata.annotations ?? {}), [FORMAT_ANNOTATION]: info.format };
      if (configRevisions?.[i]) ann[CONFIG_REVISION_ANNOTATION] = configRevisions[i]!;
      if (JSON.stringify(ann) !== JSON.stringify(v.metadata.annotations ?? {})) {
        v.metadata.annotations = ann;
        await env.ctx.store.update(v);
      }
      await this.setStatus(env, name, {
        phase: 'Ready', path: info.path, bytesUsed: used[i]!,
        ...(templateRevision !== undefined ? { templateRevision } : {}),
      });
    }
  }

  /** The volumes leave the storage (in order, one driver call), then their objects go. */
  private async removeVolumes(env: Env, names: string[]): Promise<void> {
    await env.driver.removeAll(names.map((n) => this.key(env, n)));
    for (const name of names) {
      try {
        await env.ctx.store.delete({ kind: 'Volume', namespace: env.vc.metadata.namespace, name });
      } catch (e) {
        if (!(e instanceof NotFoundError)) throw e;
      }
    }
  }

  private async setStatus(env: Env, name: string, status: Volume['status']): Promise<void> {
    const ref = { kind: 'Volume', namespace: env.vc.metadata.namespace, name };
    const v = await env.ctx.store.get<Volume>(ref);
    v.status = { ...status, observedGeneration: v.metadata.generation };
    await env.ctx.store.updateStatus(v);
  }

  /**
   * After a full storage or a missing template image: remove the volumes this attempt made
   * (`keep` = the volumes that were Ready before it), or all of them for a VC never ready.
   */
  private async rollBack(env: Env, keep: Set<string> | undefined): Promise<void> {
    const vols = await this.volumesOf(env);
    const doomed = vols.filter((v) => !keep?.has(v.metadata.name));
    const order = (v: Volume): number => (v.spec?.role === 'original' ? 1 : 0);
    await this.removeVolumes(env, doomed.sort((a, b) => order(a) - order(b)).map((v) => v.metadata.name));
    if (!keep) await removePath(env.transport, env.vcDir);
  }

  private async writeConditions(ctx: ReconcileContext, ref: ObjectRef, conds: ConditionInput[]): Promise<void> {
    const vc = await ctx.store.tryGet<VirtualCluster>(ref);
    if (!vc) return;
    let list = vc.status?.conditions;
    for (const c of conds) list = setCondition(list, c, vc.metadata.generation ?? 0);
    if (JSON.stringify(list) === JSON.stringify(vc.status?.conditions)) return;
    vc.status = { ...(vc.status ?? {}), conditions: list };
    await ctx.store.updateStatus(vc);
  }
}

function refOf(vc: VirtualCluster): ObjectRef {
  return { kind: 'VirtualCluster', namespace: vc.metadata.namespace, name: vc.metadata.name };
}

function templateSource(t: OSTemplate): TemplateSource {
  const img = t.spec!.image;
  return {
    ...(img.path ? { path: img.path } : {}),
    ...(img.format ? { format: img.format } : {}),
    ...(img.tarball ? { tarball: img.tarball } : {}),
  };
}
