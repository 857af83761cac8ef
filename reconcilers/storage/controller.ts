// The storage controller: for each VirtualCluster, observe (objects, volumes on the storage, the
// VC's configuration file), plan (plan.ts) and perform the actions through a StorageDriver, then
// plan again until nothing is left; finally write StorageReady and UpdatePending on the VC.
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
import { ensureDir, removePath, vcStorageDir } from '../../drivers/storage/file-volumes.js';
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
    const wasEverReady = (await transport.exec(['test', '-e', posix.join(env.vcDir, 'vc.json')])).code === 0;

    let conditions: ConditionInput[] = [];
    let requeueAfterMs: number | undefined;
    try {
      for (let pass = 0; pass < MAX_PASSES; pass++) {
        const obs = await this.observe(env);
        const plan = planStorage(obs);
        conditions = plan.conditions;
        requeueAfterMs = plan.requeueAfterMs;
        if (plan.actions.length === 0) break;
        let batched = false;
        for (const a of plan.actions) {
          if (ctx.signal.aborted) throw new Error('reconcile aborted', { cause: ctx.signal.reason });
          await this.opts.beforeAction?.(a, env.vc);
          if (a.type === 'provision' && a.role === 'snapshot' && !batched) {
            // Stage 2 in one round trip; the per-volume actions then find their snapshot made.
            batched = true;
            const names = plan.actions.flatMap((x) => (x.type === 'provision' && x.role === 'snapshot' ? [x.name] : []));
            await driver.snapshotAll(this.key(env, `${env.vc.metadata.name}-original`), names.map((n) => this.key(env, n))).catch((e: unknown) => {
              if (e instanceof Error && !(e instanceof StorageFullError)) (e as { storageReason?: string }).storageReason = 'SnapshotFailed';
              throw e;
            });
          }
          const gone = await this.apply(env, a, obs);
          if (gone) return undefined; // finalizer removed: the VC is gone
        }
        env.vc = (await ctx.store.tryGet<VirtualCluster>(key)) ?? env.vc;
      }
    } catch (e) {
      if (e instanceof StorageFullError || e instanceof TemplateNotFoundError) {
        await this.rollBack(env, wasEverReady ? readyAtStart : undefined);
        this.holdOff.set(vc.metadata.uid!, { until: Date.now() + ROLLBACK_HOLD_MS, generation: vc.metadata.generation, templateRv: templateRv() });
        const reason = e instanceof StorageFullError ? 'StorageFull' : 'TemplateNotFound';
        ctx.events.record(env.vc, 'Warning', reason, e.message);
        await this.writeConditions(ctx, key, [{ type: STORAGE_READY, status: 'False', reason, message: `${e.message} (rolled back the volumes this attempt made)` }]);
        return { requeueAfterMs: ROLLBACK_HOLD_MS };
      }
      const reason = (e as { storageReason?: string }).storageReason ?? 'StorageError';
      if (!env.vc.metadata.deletionTimestamp) {
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
      ...(vc.spec!.firstBoot?.script !== undefined ? { firstBootScript: vc.spec!.firstBoot.script } : {}),
    };
  }

  private async observe(env: Env): Promise<StorageObservation> {
    const { vc, ctx, driver } = env;
    const template = ctx.cache.get<OSTemplate>({ kind: 'OSTemplate', name: vc.spec!.template })
      ?? (await ctx.store.tryGet<OSTemplate>({ kind: 'OSTemplate', name: vc.spec!.template }));
    const volumes = await this.volumesOf(env);
    const names = new Set([...volumes.map((v) => v.metadata.name), ...desiredVolumes(vc).map((d) => d.name)]);
    const present: Record<string, boolean> = {};
    await Promise.all([...names].map(async (n) => { present[n] = await driver.exists(this.key(env, n)); }));
    const vmsActive = ctx.cache
      .list<VirtualNode>('VirtualNode', { namespace: vc.metadata.namespace, labelSelector: `${CLUSTER_LABEL}=${vc.metadata.name}` })
      .some((vn) => ACTIVE_PHASES.has(vn.status?.phase ?? ''));
    const subnet = this.subnetOf(vc);
    const configRevisions: Record<number, string> = {};
    if (subnet && !vc.metadata.deletionTimestamp) {
      for (let i = 0; i < vc.spec!.nodes; i++) configRevisions[i] = buildConfigVars(this.nodeConfig(env, i)).VC_CONFIG_REVISION!;
    }
    const cur = await env.transport.exec(['cat', '--', posix.join(env.vcDir, 'vc.json')]);
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
        const key = this.key(env, a.name);
        const spec = env.vc.spec!;
        let info: VolumeInfo;
        let templateRevision: number | undefined;
        try {
          switch (a.role) {
            case 'original':
              info = await driver.createOriginal(key, templateSource(obs.template!));
              templateRevision = obs.template!.spec!.revision;
              break;
            case 'snapshot':
              info = await driver.snapshot(originalKey, key);
              templateRevision = obs.volumes.find((v) => v.metadata.name === originalKey.name)?.status?.templateRevision;
              break;
            case 'swap':
              info = await driver.createSwap(key, spec.node.swapMiB * 1024 * 1024);
              break;
            case 'shared': {
              const fs = spec.sharedStorage!.filesystem === 'ocfs2' ? 'ocfs2' : 'nfs';
              info = await driver.createShared(key, volumeBytes(spec.sharedStorage!.sizeGiB), fs);
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
        await this.markReady(env, a.name, info, templateRevision);
        if (a.role === 'original') ctx.events.record(env.vc, 'Normal', 'OriginalCreated', `original volume ${info.path} made from OSTemplate ${obs.template!.metadata.name} revision ${templateRevision}`);
        return false;
      }
      case 'reset': {
        const info = await driver.reset(originalKey, this.key(env, a.name));
        const rev = obs.volumes.find((v) => v.metadata.name === originalKey.name)?.status?.templateRevision;
        await this.markReady(env, a.name, info, rev);
        return false;
      }
      case 'writeConfig': {
        const { bytes, revision } = buildConfigDisk(this.nodeConfig(env, a.index));
        const info = await driver.writeConfig(this.key(env, a.name), bytes);
        await this.markReady(env, a.name, info, undefined, revision);
        return false;
      }
      case 'invalidate':
        for (const name of a.names) {
          await driver.remove(this.key(env, name));
          await this.setStatus(env, name, { phase: 'Pending' });
        }
        return false;
      case 'remove':
        await driver.remove(this.key(env, a.name));
        try {
          await ctx.store.delete({ kind: 'Volume', namespace: env.vc.metadata.namespace, name: a.name });
        } catch (e) {
          if (!(e instanceof NotFoundError)) throw e;
        }
        return false;
      case 'writeVcConfig':
        await ensureDir(env.transport, env.vcDir);
        await env.transport.writeFile(posix.join(env.vcDir, 'vc.json'), obs.vcConfigDesired!, 0o644);
        return false;
      case 'removeVcDir':
        await removePath(env.transport, env.vcDir);
        return false;
      case 'refreshUsage':
        this.lastUsage.set(env.vc.metadata.uid!, Date.now());
        for (const v of obs.volumes) {
          if (v.status?.phase !== 'Ready') continue;
          const used = await driver.usage(this.key(env, v.metadata.name));
          if (used !== v.status.bytesUsed) await this.setStatus(env, v.metadata.name, { ...v.status, bytesUsed: used });
        }
        return false;
      case 'event':
        ctx.events.record(env.vc, a.eventType, a.reason, a.message);
        return false;
    }
  }

  private async markReady(env: Env, name: string, info: VolumeInfo, templateRevision?: number, configRevision?: string): Promise<void> {
    const ref = { kind: 'Volume', namespace: env.vc.metadata.namespace, name };
    let v = await env.ctx.store.get<Volume>(ref);
    const ann: Record<string, string> = { ...(v.metadata.annotations ?? {}), [FORMAT_ANNOTATION]: info.format };
    if (configRevision) ann[CONFIG_REVISION_ANNOTATION] = configRevision;
    if (JSON.stringify(ann) !== JSON.stringify(v.metadata.annotations ?? {})) {
      v.metadata.annotations = ann;
      v = await env.ctx.store.update(v);
    }
    const bytesUsed = await env.driver.usage(this.key(env, name));
    await this.setStatus(env, name, {
      phase: 'Ready', path: info.path, bytesUsed,
      ...(templateRevision !== undefined ? { templateRevision } : {}),
    });
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
    for (const v of doomed.sort((a, b) => order(a) - order(b))) {
      await env.driver.remove(this.key(env, v.metadata.name));
      try {
        await env.ctx.store.delete({ kind: 'Volume', namespace: v.metadata.namespace, name: v.metadata.name });
      } catch (e) {
        if (!(e instanceof NotFoundError)) throw e;
      }
    }
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
