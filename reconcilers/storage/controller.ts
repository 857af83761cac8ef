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
// Layout: the plan is plan.ts (pure), the apply step an action executor (actions.ts), the documents
// written to the storage (config disks' input, vc.json) are built in documents.ts. A rolled-back VC
// rests for a while (rollbackHoldMs in plan.ts), decided from what the rollback stored on the VC.
//
// Which node does the work: the SAN is shared, so any Ready PhysicalNode sees the storage root;
// the controller takes the first Ready, schedulable-or-not node in name order (deterministic, so
// consecutive reconciles use the same connection) and its spec.storageRoot; a qcow2 VC (files in
// its own directory) is given one of the Ready nodes sharing that root, by its uid (storageNodeFor).
//
// Bad input: a missing OSTemplate gives StorageReady=False/TemplateNotFound; a missing template
// image or a full storage gives StorageReady=False (TemplateNotFound / StorageFull) after rolling
// back what the attempt made: a VC that never was ready loses every volume (no half-made VC),
// a VC that was ready loses only the volumes this attempt added (its nodes' data is kept).

import { posix } from 'node:path';
import { conditionHolds, setCondition, getCondition, type ConditionInput } from '../../api/conditions.js';
import { ConflictError, type ObjectRef } from '../../api/store/types.js';
import type { OSTemplate, PhysicalNode, VirtualCluster, VirtualNode, Volume } from '../../api/types.js';
import { GenericError, WaitingError, type CacheReader, type ControllerSpec, type ReconcileContext, type ReconcileResult } from '../../controllers/types.js';
import { writeStatusOver } from '../../api/status-writer.js';
import { CLUSTER_LABEL, clusterSelector } from '../../api/labels.js';
import { cachedCount, mapOnChange, perCacheState } from '../../controllers/change-filter.js';
import { WrittenRevisions } from '../../controllers/read-your-writes.js';
import { finalStatusWrite } from '../../controllers/final-status.js';
import { createStorageDriver, type DriverOptions } from '../../drivers/storage/index.js';
import { vcStorageDir } from '../../drivers/storage/file-volumes.js';
import { StorageFullError, TemplateNotFoundError } from '../../drivers/storage/types.js';
import type { Transport } from '../../drivers/transport/types.js';
import { StorageActionExecutor, volumeKey, volumesOf, type StorageEnv } from './actions.js';
import { driverOptionsFor } from './activation.js';
import { buildConfigVars } from './config-disk.js';
import { nodeConfig, subnetOf, vcConfigDocument } from './documents.js';
import { sharedOcfs2For } from './shared-ocfs2.js';
import {
  ROLLBACK_ANNOTATION,
  ROLLBACK_HOLD_MS,
  STORAGE_FINALIZER,
  STORAGE_READY,
  desiredVolumes,
  driverOf,
  planDeletionWait,
  planStorage,
  rollbackHoldMs,
  rollbackMark,
  type StorageAction,
  type StorageObservation,
} from './plan.js';

export const STORAGE_CONTROLLER = 'storage';
const ACTIVE_PHASES = new Set(['Running', 'Starting', 'Migrating', 'Suspending']);
const MAX_PASSES = 8;

/**
 * A complete storage is looked at again (and its usage figures refreshed) every usageIntervalMs,
 * or every USAGE_MS_PER_VC per VirtualCluster when that is longer: each such pass reads the storage
 * node and the store, so at 2,500 VCs one a minute per VC was ~42 passes a second, most of the
 * manager once the storage was Ready (hack/bench-scale 1000:10000, session 12). With the spacing
 * growing with the VCs, that upkeep costs the same share of the manager at any size.
 */
export const USAGE_MS_PER_VC = 200;

/** The spacing of a VC's usage refresh with `vcs` VirtualClusters. */
export function usageIntervalMs(opts: Pick<StorageControllerOptions, 'usageIntervalMs' | 'usageMsPerVc'>, vcs: number): number {
  return Math.max(opts.usageIntervalMs ?? 60_000, vcs * (opts.usageMsPerVc ?? USAGE_MS_PER_VC));
}

export interface StorageControllerOptions {
  /** The transport of a PhysicalNode (a TransportCache in the manager). */
  transports: { get(node: PhysicalNode): Transport };
  driverOptions?: DriverOptions;
  /** How often Volume.status.bytesUsed is refreshed; default 60 s, or usageMsPerVc per VC when longer. */
  usageIntervalMs?: number;
  /** The usage refresh's spacing per VirtualCluster in the cache; default USAGE_MS_PER_VC. */
  usageMsPerVc?: number;
  /** Test hook: runs before every action; a throw stops the reconcile there (crash injection). */
  beforeAction?: (a: StorageAction, vc: VirtualCluster) => void | Promise<void>;
}

/** The storage controller over the manager's cache (its watch mappers read it). */
export function storageController(cache: CacheReader, opts: StorageControllerOptions): ControllerSpec {
  const r = new StorageReconciler(opts);
  return {
    name: STORAGE_CONTROLLER,
    forKind: 'VirtualCluster',
    // What the plan reads of the VC (spec, finalizers, the rollback mark, the subnet); not the
    // other controllers' status writes, each of which re-read every volume (hack/bench-scale).
    forSignature: (o) => [o.metadata.uid, o.metadata.generation, o.metadata.deletionTimestamp, o.metadata.finalizers,
      o.metadata.annotations, (o as VirtualCluster).status?.subnet],
    condition: STORAGE_READY,
    owns: ['Volume'],
    watches: [
      { kind: 'OSTemplate', map: (t) => clustersUsing(cache, t.metadata.name) },
      // Only what the plan reads (controllers/change-filter.ts): a VM's phase class and a node's
      // fitness as the storage node, not every status write of either.
      { kind: 'VirtualNode', map: mapOnChange(cache, (o) => {
        const vn = o as VirtualNode;
        return [vn.spec?.index, ACTIVE_PHASES.has(vn.status?.phase ?? ''), vn.status?.phase === 'Suspended', !!vn.metadata.deletionTimestamp];
      }, (vn) => clusterOf(vn as VirtualNode)) },
      { kind: 'PhysicalNode', map: mapOnChange(cache, (o) => {
        const pn = o as PhysicalNode;
        return [pn.spec?.storageRoot, getCondition(pn.status?.conditions, 'Ready')?.status, !!pn.metadata.deletionTimestamp];
      }, () => allClusters(cache)) },
    ],
    // Independent VCs at once: a storage node runs several volume commands in parallel (as many
    // as its transport's per-host bound, 16: with 8, VCs waited on each other's round trips in
    // hack/bench-scale while the node had room), and qcow2 VCs are spread over the nodes sharing
    // the storage root (storageNodeFor): with 16 workers in all, 2,500 VCs went at ~3 VC passes
    // per s, each ~5.7 s mostly waiting on its node (hack/bench-scale 1000:10000, session 11).
    workers: 64,
    // The first original of a large template is a full copy: give it time.
    timeoutMs: 60 * 60_000,
    reconcile: (key, ctx) => r.reconcile(key, ctx),
  };
}

function vcRef(vc: VirtualCluster): ObjectRef {
  return { kind: 'VirtualCluster', namespace: vc.metadata.namespace, name: vc.metadata.name };
}

/** The VCs made from OSTemplate `template`. */
function clustersUsing(cache: CacheReader, template: string): ObjectRef[] {
  return cache.list<VirtualCluster>('VirtualCluster').filter((vc) => vc.spec?.template === template).map(vcRef);
}

function allClusters(cache: CacheReader): ObjectRef[] {
  return cache.list<VirtualCluster>('VirtualCluster').map(vcRef);
}

function clusterOf(vn: VirtualNode): ObjectRef[] {
  const c = vn.metadata.labels?.[CLUSTER_LABEL] ?? vn.spec?.cluster;
  return c ? [{ kind: 'VirtualCluster', namespace: vn.metadata.namespace, name: c }] : [];
}

/** Whether some VM of `vc` (in the cache) is running, starting, migrating or suspending. */
function vmsActive(cache: CacheReader, vc: VirtualCluster): boolean {
  return cache.list<VirtualNode>('VirtualNode', { namespace: vc.metadata.namespace, labelSelector: clusterSelector(vc.metadata.name) })
    .some((vn) => ACTIVE_PHASES.has(vn.status?.phase ?? ''));
}

/** The node that does the storage work: the first Ready PhysicalNode by name. */
const byNaturalName = new Intl.Collator('en', { numeric: true }).compare;

export function pickStorageNode(nodes: readonly PhysicalNode[]): PhysicalNode | undefined {
  // The first in natural name order, in one pass (was a sort with a collator made per comparison).
  let first: PhysicalNode | undefined;
  for (const n of nodes) {
    if (!n.spec?.storageRoot || getCondition(n.status?.conditions, 'Ready')?.status !== 'True') continue;
    if (!first || byNaturalName(n.metadata.name, first.metadata.name) < 0) first = n;
  }
  return first;
}

/**
 * The drivers whose work for different VCs may run on different nodes at once: qcow2 keeps each
 * VC's volumes as files in the VC's own directory on the shared storage root. The volume-group
 * drivers (lvm, evms: one VG's metadata, no cluster locking) and btrfs (one filesystem) stay on
 * the first node.
 */
const SPREAD_DRIVERS: ReadonlySet<string> = new Set(['qcow2']);

/** The Ready nodes that share the first one's storage root (pickStorageNode), in natural name order. */
export function storageNodes(nodes: readonly PhysicalNode[]): PhysicalNode[] {
  const first = pickStorageNode(nodes);
  if (!first) return [];
  return nodes.filter((n) => n.spec?.storageRoot === first.spec!.storageRoot && getCondition(n.status?.conditions, 'Ready')?.status === 'True')
    .sort((a, b) => byNaturalName(a.metadata.name, b.metadata.name));
}

/**
 * The node that does a VC's storage work: for a driver in SPREAD_DRIVERS one of `candidates`
 * (storageNodes) chosen by the VC's uid, so that VCs spread over the nodes sharing the storage
 * root and each VC keeps its node while they stay Ready (hack/bench-scale: with every VC on the
 * first node, its bound on commands at once made ~4 s per VC pass at 10,000 VMs); else the first.
 */
export function storageNodeFor(vc: VirtualCluster, candidates: readonly PhysicalNode[]): PhysicalNode | undefined {
  if (candidates.length <= 1 || !SPREAD_DRIVERS.has(driverOf(vc))) return candidates[0];
  let h = 0x811c9dc5; // FNV-1a
  for (const ch of vc.metadata.uid ?? `${vc.metadata.namespace}/${vc.metadata.name}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return candidates[h % candidates.length];
}

/** How long a reconcile waits for the cache to hold what it wrote or read before reading the store. */
export const CACHE_WAIT_MS = 3_000;

const vcKey = (key: ObjectRef): string => `${key.namespace ?? ''}/${key.name}`;

export class StorageReconciler {
  /** When each VC's (by uid) usage figures were last read: the plan refreshes them every usageIntervalMs. */
  private lastUsage = new Map<string, number>();
  /** storageNodes once per state of the cache's PhysicalNodes, not once per VC reconcile. */
  private readonly storageNodes = perCacheState(['PhysicalNode'], (c) => storageNodes(c.list<PhysicalNode>('PhysicalNode')));
  /** The usage refresh's spacing, once per state of the cache's VCs. */
  private readonly usageInterval = perCacheState(['VirtualCluster'], (c) => usageIntervalMs(this.opts, cachedCount(c, 'VirtualCluster')));
  /**
   * The versions of each VC's (uid) Volumes this controller wrote or read: the cache serves them
   * once it holds these, waited for up to CACHE_WAIT_MS (at 10,000 VMs the manager's event loop
   * lagged 1-3 s, the 200 ms default ran out at once and each pass read every volume of the VC from
   * the store: 22.8 reads per VM against 3.9 at 1,000, hack/bench-scale). 64 workers wait cheaply.
   */
  private readonly volumeRevisions = new WrittenRevisions('Volume', CACHE_WAIT_MS);
  /** The same for the VCs (by namespace/name): a reconcile reads its VC from the cache once it holds the version last written or read here. */
  private readonly vcRevisions = new WrittenRevisions('VirtualCluster', CACHE_WAIT_MS);
  constructor(private readonly opts: StorageControllerOptions) {}

  async reconcile(key: ObjectRef, ctx: ReconcileContext): Promise<ReconcileResult> {
    const vc = await this.readVc(ctx, key);
    if (!vc) return undefined;
    // Being deleted while its VMs run: nothing is looked at (neither the store's volumes nor the
    // storage node) until they stop, which queues the VC again (planDeletionWait).
    const wait = planDeletionWait(vc, vmsActive(ctx.cache, vc));
    if (wait) {
      if (!wait.conditions.every((c) => conditionHolds(vc.status?.conditions, c))) await this.writeConditions(ctx, key, wait.conditions);
      return { requeueAfterMs: wait.requeueAfterMs! };
    }
    ctx = { ...ctx, store: this.vcRevisions.track(this.volumeRevisions.track(ctx.store, vc.metadata.uid!), vcKey(key)) };
    const node = storageNodeFor(vc, this.storageNodes(ctx.cache));
    if (!node) {
      if (vc.metadata.deletionTimestamp) return { requeueAfterMs: 10_000 };
      throw new WaitingError('no Ready PhysicalNode with a storageRoot to do the storage work on', 'NoStorageNode', 10_000);
    }
    const cachedTemplate = (): OSTemplate | undefined => ctx.cache.get<OSTemplate>({ kind: 'OSTemplate', name: vc.spec!.template });
    const held = rollbackHoldMs(vc, cachedTemplate(), new Date());
    if (held !== undefined) return { requeueAfterMs: held };
    const transport = this.opts.transports.get(node);
    const storageRoot = node.spec!.storageRoot;
    // the SAN drivers make their volume group on the node's SAN disk (spec.sanDevice) when it has none
    const driver = createStorageDriver(driverOf(vc), transport, driverOptionsFor(node, this.opts.driverOptions));
    const env: StorageEnv = {
      ctx, vc, driver, transport, storageRoot,
      vcDir: vcStorageDir(storageRoot, vc.metadata.namespace ?? 'default', vc.metadata.name, vc.metadata.uid!),
      // ocfs2: on the SAN, made by this node; refused (StorageReady False) when it has no SAN disk
      sharedOcfs2: sharedOcfs2For(vc, node, transport, ctx.cache),
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
    const actions = new StorageActionExecutor(env, () => this.lastUsage.set(vc.metadata.uid!, Date.now()));
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
        // Upkeep of a complete storage (usage figures, an Event) is not progress to report: at
        // 2,500 VCs each minute's usage pass of each VC wrote Reconciling True and cleared it.
        if (plan.actions.some((a) => a.type !== 'refreshUsage' && a.type !== 'event')) {
          await ctx.progressing?.('Progressing', `storage work: ${[...new Set(plan.actions.map((a) => a.type))].join(', ')}`);
        }
        for (const a of plan.actions) {
          if (ctx.signal.aborted) throw new Error('reconcile aborted', { cause: ctx.signal.reason });
          await this.opts.beforeAction?.(a, env.vc);
          const gone = await actions.run(a, obs);
          if (gone) return undefined; // finalizer removed: the VC is gone
        }
        // The actions that write the VC replace env.vc; a newer version in the cache (another
        // controller's write) is taken, else env.vc is current enough: a change the plan reads
        // (forSignature) queues the VC again. Was a store read per pass.
        const cached = ctx.cache.get<VirtualCluster>(key);
        if (cached && cached.metadata.uid === env.vc.metadata.uid && Number(cached.metadata.resourceVersion) > Number(env.vc.metadata.resourceVersion)) env.vc = cached;
      }
    } catch (e) {
      if (e instanceof StorageFullError || e instanceof TemplateNotFoundError) {
        wasEverReady ??= (await transport.exec(['test', '-e', posix.join(env.vcDir, 'vc.json')])).code === 0;
        await actions.rollBack(wasEverReady ? readyAtStart : undefined);
        await this.setRollbackMark(ctx, key, rollbackMark(vc, cachedTemplate(), new Date()));
        const reason = e instanceof StorageFullError ? 'StorageFull' : 'TemplateNotFound';
        ctx.events.record(env.vc, 'Warning', reason, e.message);
        throw new WaitingError(`${e.message} (rolled back the volumes this attempt made)`, reason, ROLLBACK_HOLD_MS, { cause: e });
      }
      // A failure says the storage is not ready only when it hit the work of making it ready. One
      // that hit looking at the storage (a lost SSH session, say) or upkeep of a complete storage
      // (vc.json, usage figures) leaves a True StorageReady alone: nothing on the storage changed,
      // and the retry (with backoff) looks again. Otherwise a busy node's transient failures made
      // StorageReady flap, and the runtime refuses to start VMs while it is not True.
      // Told (a GenericError: StorageReady False with its reason, from controllers/outcome.ts) or
      // not (the plain error: retried with backoff, no condition).
      const wasTrue = getCondition(env.vc.status?.conditions, STORAGE_READY)?.status === 'True';
      const tell = !env.vc.metadata.deletionTimestamp && !(wasTrue && planReady !== false);
      if (!tell) throw e instanceof GenericError ? e.cause : e;
      throw e instanceof GenericError ? e : new GenericError((e as Error).message, 'StorageError', { cause: e });
    }
    // The reconcile's last status write: it clears this controller's Reconciling in the same write.
    if (conditions.length > 0) await this.writeConditions(ctx, key, conditions, true);
    if (env.vc.metadata.annotations?.[ROLLBACK_ANNOTATION] !== undefined && conditions.some((c) => c.type === STORAGE_READY && c.status === 'True')) {
      await this.setRollbackMark(ctx, key, undefined);
    }
    return { requeueAfterMs: requeueAfterMs ?? this.usageInterval(ctx.cache) };
  }

  /**
   * The VC at the start of a reconcile: from the cache once it holds the version this controller
   * last wrote or read (vcRevisions), else from the store. Another controller's newer status
   * write may be missing from the cached copy: the plan reads none but the subnet, whose change
   * queues the VC again (forSignature), and its own conditions are written over a store read
   * (writeConditions).
   */
  private async readVc(ctx: ReconcileContext, key: ObjectRef): Promise<VirtualCluster | undefined> {
    if (await this.vcRevisions.fresh(ctx.cache, vcKey(key))) {
      const cached = ctx.cache.get<VirtualCluster>(key);
      if (cached) return cached;
    }
    const vc = await ctx.store.tryGet<VirtualCluster>(key);
    if (vc) this.vcRevisions.saw(vcKey(key), [vc]);
    else this.vcRevisions.forget(vcKey(key));
    return vc;
  }

  /**
   * The VC's Volumes: from the cache once it holds every version of them this controller wrote
   * or read (WrittenRevisions; the storage controller is their only writer), else from the store
   * (volumesOf). Each pass read every volume from the store before (hack/bench-scale).
   */
  private async volumesOf(env: StorageEnv): Promise<Volume[]> {
    const { vc, ctx } = env;
    const uid = vc.metadata.uid!;
    if (vc.metadata.deletionTimestamp) this.volumeRevisions.forget(uid);
    // No storage finalizer yet (VC read from the store): no storage pass ever made a Volume of it
    // (the plan adds the finalizer before it creates any), so there is nothing to read (a new VC
    // read each of its volume names from the store before: hack/bench-scale).
    else if (!vc.metadata.finalizers?.includes(STORAGE_FINALIZER)) return [];
    else if (await this.volumeRevisions.fresh(ctx.cache, uid)) {
      const ns = vc.metadata.namespace;
      const names = new Set(desiredVolumes(vc).map((d) => d.name));
      for (const v of ctx.cache.list<Volume>('Volume', { namespace: ns, labelSelector: clusterSelector(vc.metadata.name) })) names.add(v.metadata.name);
      return [...names].sort().map((name) => ctx.cache.get<Volume>({ kind: 'Volume', namespace: ns, name }))
        .filter((v): v is Volume => !!v && v.metadata.labels?.[CLUSTER_LABEL] === vc.metadata.name && !!v.metadata.ownerReferences?.some((o) => o.uid === uid));
    }
    const read = await volumesOf(env);
    if (!vc.metadata.deletionTimestamp) this.volumeRevisions.saw(uid, read);
    return read;
  }

  private async observe(env: StorageEnv): Promise<StorageObservation> {
    const { vc, ctx, driver } = env;
    const template = ctx.cache.get<OSTemplate>({ kind: 'OSTemplate', name: vc.spec!.template })
      ?? (await ctx.store.tryGet<OSTemplate>({ kind: 'OSTemplate', name: vc.spec!.template }));
    const volumes = await this.volumesOf(env);
    const names = [...new Set([...volumes.map((v) => v.metadata.name), ...desiredVolumes(vc).map((d) => d.name)])];
    // Two round trips to the storage node, whatever the size of the VC.
    const [exist, cur] = await Promise.all([
      driver.existsAll(names.map((n) => volumeKey(env, n))),
      env.transport.exec(['cat', '--', posix.join(env.vcDir, 'vc.json')]),
    ]);
    const present = Object.fromEntries(names.map((n, i) => [n, exist[i] === true]));
    if (env.sharedOcfs2) present[env.sharedOcfs2.name] = await env.sharedOcfs2.exists();
    const subnet = subnetOf(vc);
    const configRevisions: Record<number, string> = {};
    if (subnet && !vc.metadata.deletionTimestamp) {
      for (let i = 0; i < vc.spec!.nodes; i++) configRevisions[i] = buildConfigVars(nodeConfig(vc, i)).VC_CONFIG_REVISION!;
    }
    const now = Date.now();
    const usageDue = now - (this.lastUsage.get(vc.metadata.uid!) ?? 0) >= this.usageInterval(ctx.cache);
    return {
      vc, template, volumes, present, vmsActive: vmsActive(ctx.cache, vc), subnet, configRevisions,
      vcConfigCurrent: cur.code === 0 ? cur.stdout : undefined,
      vcConfigDesired: template ? vcConfigDocument(vc, template, volumes) : undefined,
      usageDue,
    };
  }

  /** Sets (or, with undefined, removes) the VC's ROLLBACK_ANNOTATION; a conflicting write is redone over a fresh read. */
  private async setRollbackMark(ctx: ReconcileContext, ref: ObjectRef, mark: string | undefined): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const vc = await ctx.store.tryGet<VirtualCluster>(ref);
      if (!vc || vc.metadata.annotations?.[ROLLBACK_ANNOTATION] === mark) return;
      const annotations = { ...(vc.metadata.annotations ?? {}) };
      if (mark === undefined) delete annotations[ROLLBACK_ANNOTATION];
      else annotations[ROLLBACK_ANNOTATION] = mark;
      try {
        await ctx.store.update({ ...vc, metadata: { ...vc.metadata, annotations } });
        return;
      } catch (e) {
        if (!(e instanceof ConflictError) || attempt >= 4) throw e;
      }
    }
  }

  /** `conds` written over a store read of the VC; `final`: as the reconcile's last status write (finalStatusWrite). */
  private async writeConditions(ctx: ReconcileContext, ref: ObjectRef, conds: ConditionInput[], final = false): Promise<void> {
    const vc = await ctx.store.tryGet<VirtualCluster>(ref);
    if (!vc) return;
    const next = (cur: VirtualCluster): VirtualCluster['status'] => {
      let list = cur.status?.conditions;
      for (const c of conds) list = setCondition(list, c, cur.metadata.generation ?? 0);
      return { ...(cur.status ?? {}), conditions: list };
    };
    await (final ? finalStatusWrite(ctx, vc, next) : writeStatusOver(ctx.store, vc, next));
  }
}

