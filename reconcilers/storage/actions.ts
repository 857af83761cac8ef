// The storage controller's apply step: an executor of the plan's actions (plan.ts StorageAction)
// for one VirtualCluster, through its StorageDriver and the store. Each action is idempotent (the
// plan may hand it out again after a crash); `run` performs one and says whether the VC is gone.
// The Volume objects' status (phase, path, usage, template revision) is written here, the VC's
// conditions by the controller (controller.ts).

import { posix } from 'node:path';
import { AlreadyExistsError, ConflictError, NotFoundError, type BatchOp, type ObjectRef } from '../../api/store/types.js';
import { BATCH_OPS, chunks } from '../../api/store/batch-chunks.js';
import { CLUSTER_LABEL, clusterSelector } from '../../api/labels.js';
import { ensureFinalizer, removeFinalizer } from '../../api/finalizers.js';
import type { VirtualCluster, Volume } from '../../api/types.js';
import { GenericError, type ReconcileContext } from '../../controllers/types.js';
import { eachKey, ensureDir, removePath } from '../../drivers/storage/file-volumes.js';
import type { StorageDriver, VolumeInfo, VolumeKey } from '../../drivers/storage/types.js';
import { StorageFullError, TemplateNotFoundError } from '../../drivers/storage/types.js';
import type { Transport } from '../../drivers/transport/types.js';
import { buildConfigDisk } from './config-disk.js';
import { nodeConfig, templateSource } from './documents.js';
import type { SharedOcfs2Volume } from './shared-ocfs2.js';
import {
  desiredVolumes,
  STORAGE_FINALIZER,
  volumeBytes,
  type StorageAction,
  type StorageObservation,
} from './plan.js';

/** One reconcile's view of a VC's storage: where it lives and what reaches it. */
export interface StorageEnv {
  ctx: ReconcileContext;
  /** The VC as last written (actions that write it replace it). */
  vc: VirtualCluster;
  driver: StorageDriver;
  transport: Transport;
  vcDir: string;
  storageRoot: string;
  /** An ocfs2 VC's shared volume on the SAN (shared-ocfs2.ts): made and removed there, not by `driver`. */
  sharedOcfs2?: SharedOcfs2Volume;
}

/** The driver's key of the VC's volume `name`. */
export function volumeKey(env: StorageEnv, name: string): VolumeKey {
  return { vcDir: env.vcDir, vcUid: env.vc.metadata.uid!, name };
}

/** The Volume objects labelled with the VC and owned by it (read from the store). */
export async function volumesOf(env: StorageEnv): Promise<Volume[]> {
  const { vc, ctx } = env;
  const namespace = vc.metadata.namespace;
  // Read by name from the store, not by listing the namespace (with thousands of VCs in one
  // namespace that list made every storage pass cost all their volumes: hack/bench-scale): the
  // volumes the VC wants and those the cache knows of it (left over from a smaller size).
  const names = new Set(desiredVolumes(vc).map((d) => d.name));
  for (const v of ctx.cache.list<Volume>('Volume', { namespace, labelSelector: clusterSelector(vc.metadata.name) })) names.add(v.metadata.name);
  const got = await Promise.all([...names].sort().map((name) => ctx.store.tryGet<Volume>({ kind: 'Volume', namespace, name })));
  return got.filter((v): v is Volume =>
    !!v && v.metadata.labels?.[CLUSTER_LABEL] === vc.metadata.name && !!v.metadata.ownerReferences?.some((o) => o.uid === vc.metadata.uid));
}

/** Attempts of a batch of Volume writes that conflicted with another writer (each over a fresh read). */
const WRITE_ATTEMPTS = 4;

export class StorageActionExecutor {
  /**
   * The newest version of each Volume (by name) this executor was shown (the observation) or
   * wrote: its writes go over it, conditionally on its resourceVersion, without reading it first
   * (a Volume written from a store read cost a get per write: hack/bench-scale). A conflict
   * re-reads from the store.
   */
  private readonly latest = new Map<string, Volume>();

  /** `onUsageRefreshed` is told when usage figures were read (the controller times the next). */
  constructor(private readonly env: StorageEnv, private readonly onUsageRefreshed: () => void) {}

  /** Performs one action. Returns true when the VC is gone (finalizer removed). */
  async run(a: StorageAction, obs: StorageObservation): Promise<boolean> {
    this.know(obs.volumes);
    const env = this.env;
    const { ctx, driver } = env;
    const vcName = env.vc.metadata.name;
    const originalKey = volumeKey(env, `${vcName}-original`);
    switch (a.type) {
      case 'addFinalizer':
      case 'removeFinalizer': {
        try {
          const vc = a.type === 'addFinalizer'
            ? await ensureFinalizer<VirtualCluster>(ctx.store, refOf(env.vc), STORAGE_FINALIZER)
            : await removeFinalizer<VirtualCluster>(ctx.store, refOf(env.vc), STORAGE_FINALIZER);
          if (!vc) throw new NotFoundError(`VirtualCluster ${env.vc.metadata.namespace}/${vcName} is gone`);
          env.vc = vc;
        } catch (e) {
          if (a.type === 'removeFinalizer' && e instanceof NotFoundError) return true;
          throw e;
        }
        return a.type === 'removeFinalizer';
      }
      case 'createObjects':
        await this.createVolumes(a.volumes);
        return false;
      case 'provision': {
        const keys = a.names.map((n) => volumeKey(env, n));
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
              const bytes = volumeBytes(spec.sharedStorage!.sizeGiB);
              const ocfs2 = env.sharedOcfs2;
              infos = await eachKey(keys, (k) => (ocfs2 && k.name === ocfs2.name ? ocfs2.create(bytes) : driver.createShared(k)));
              break;
            }
            default:
              throw new Error(`cannot provision a ${a.role} volume this way`);
          }
        } catch (e) {
          // A failure of the work of making the storage: named for StorageReady (the controller
          // decides whether to tell; controllers/outcome.ts writes it).
          if (e instanceof Error && !(e instanceof StorageFullError) && !(e instanceof TemplateNotFoundError)) {
            throw new GenericError(e.message, a.role === 'snapshot' ? 'SnapshotFailed' : a.role === 'original' ? 'OriginalFailed' : 'VolumeFailed', { cause: e });
          }
          throw e;
        }
        await this.markReady(a.names, infos, templateRevision);
        if (a.role === 'original') ctx.events.record(env.vc, 'Normal', 'OriginalCreated', `original volume ${infos[0]!.path} made from OSTemplate ${obs.template!.metadata.name} revision ${templateRevision}`);
        return false;
      }
      case 'reset': {
        const info = await driver.reset(originalKey, volumeKey(env, a.name));
        const rev = obs.volumes.find((v) => v.metadata.name === originalKey.name)?.status?.templateRevision;
        await this.markReady([a.name], [info], rev);
        return false;
      }
      case 'writeConfig': {
        const disks = a.volumes.map((v) => buildConfigDisk(nodeConfig(env.vc, v.index)));
        const infos = await driver.writeConfigAll(a.volumes.map((v, i) => ({ key: volumeKey(env, v.name), bytes: disks[i]!.bytes, sizeBytes: disks[i]!.sizeBytes })));
        await this.markReady(a.volumes.map((v) => v.name), infos, undefined, disks.map((d) => d.revision));
        return false;
      }
      case 'invalidate':
        for (const name of a.names) {
          await driver.remove(volumeKey(env, name));
          await this.writeVolumes([name], 'updateStatus', (v) => withStatus(v, { phase: 'Pending' }));
        }
        return false;
      case 'remove':
        await this.removeVolumes(a.names);
        return false;
      case 'writeVcConfig':
        await ensureDir(env.transport, env.vcDir);
        await env.transport.writeFile(posix.join(env.vcDir, 'vc.json'), obs.vcConfigDesired!, 0o644);
        return false;
      case 'removeVcDir':
        await removePath(env.transport, env.vcDir);
        return false;
      case 'refreshUsage': {
        this.onUsageRefreshed();
        const ready = obs.volumes.filter((v) => v.status?.phase === 'Ready');
        const used = await driver.usageAll(ready.map((v) => volumeKey(env, v.metadata.name)));
        const changed = new Map(ready.flatMap((v, i) => (used[i] !== v.status!.bytesUsed ? [[v.metadata.name, used[i]!] as const] : [])));
        await this.writeVolumes([...changed.keys()], 'updateStatus', (v) => withStatus(v, { ...v.status, bytesUsed: changed.get(v.metadata.name)! }));
        return false;
      }
      case 'event':
        ctx.events.record(env.vc, a.eventType, a.reason, a.message);
        return false;
    }
  }

  /**
   * Marks volumes Ready at the paths the driver returned, with their usage (one driver call), format
   * and config revision: their status, in one batch.
   */
  private async markReady(names: string[], infos: VolumeInfo[], templateRevision?: number, configRevisions?: string[]): Promise<void> {
    const env = this.env;
    const used = await env.driver.usageAll(names.map((n) => volumeKey(env, n)));
    const index = new Map(names.map((n, i) => [n, i]));
    await this.writeVolumes(names, 'updateStatus', (v) => {
      const i = index.get(v.metadata.name)!;
      return withStatus(v, {
        phase: 'Ready', path: infos[i]!.path, bytesUsed: used[i]!, format: infos[i]!.format,
        ...(templateRevision !== undefined ? { templateRevision } : {}),
        ...(configRevisions?.[i] ? { configRevision: configRevisions[i]! } : {}),
      });
    });
  }

  /** Notes versions of Volumes read or written elsewhere (kept when newer than the one known). */
  private know(volumes: readonly Volume[]): void {
    for (const v of volumes) {
      const cur = this.latest.get(v.metadata.name);
      if (!cur || Number(v.metadata.resourceVersion ?? 0) >= Number(cur.metadata.resourceVersion ?? 0)) this.latest.set(v.metadata.name, v);
    }
  }

  /** The named Volumes at their newest known version; those not known are read (NotFoundError if absent). */
  private async current(names: readonly string[]): Promise<Volume[]> {
    const ns = this.env.vc.metadata.namespace;
    const missing = names.filter((n) => !this.latest.has(n));
    this.know(await Promise.all(missing.map((name) => this.env.ctx.store.get<Volume>({ kind: 'Volume', namespace: ns, name }))));
    return names.map((n) => this.latest.get(n)!);
  }

  /**
   * Writes `change(v)` of each named Volume (undefined: leave it) with `op`, in batches, each
   * conditional on the version the change was made from. Another writer in between (a conflict)
   * makes it read the volumes again and redo the changes, up to WRITE_ATTEMPTS times.
   */
  private async writeVolumes(names: readonly string[], op: 'update' | 'updateStatus', change: (v: Volume) => Volume | undefined): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const read = await this.current(names);
      const ops: BatchOp[] = read.flatMap((v) => {
        const next = change(v);
        return next ? [{ op, object: next }] : [];
      });
      try {
        // Over the versions it knows, which the store need not read again (WriteOptions.read).
        for (const part of chunks(ops, BATCH_OPS)) this.know(await this.env.ctx.store.batch(part, { read }) as Volume[]);
        return;
      } catch (e) {
        if (!(e instanceof ConflictError) || attempt >= WRITE_ATTEMPTS) throw e;
        for (const n of names) this.latest.delete(n);
      }
    }
  }

  /** Creates the Volume objects in batches; one that exists already (a retry after a crash) is left as it is. */
  private async createVolumes(volumes: readonly Volume[]): Promise<void> {
    const store = this.env.ctx.store;
    for (const part of chunks(volumes, BATCH_OPS)) {
      try {
        this.know(await store.batch(part.map((object) => ({ op: 'create', object }))) as Volume[]);
      } catch (e) {
        if (!(e instanceof AlreadyExistsError)) throw e;
        for (const v of part) {
          try {
            this.know([await store.create(v)]);
          } catch (e2) {
            if (!(e2 instanceof AlreadyExistsError)) throw e2;
          }
        }
      }
    }
  }

  /** The volumes leave the storage (in order, one driver call), then their objects go (in batches). */
  private async removeVolumes(names: string[]): Promise<void> {
    const env = this.env;
    const ocfs2 = env.sharedOcfs2;
    await env.driver.removeAll(names.filter((n) => n !== ocfs2?.name).map((n) => volumeKey(env, n)));
    if (ocfs2 && names.includes(ocfs2.name)) await ocfs2.remove();
    const ns = env.vc.metadata.namespace;
    for (const part of chunks(names, BATCH_OPS)) {
      for (const n of part) this.latest.delete(n);
      try {
        await env.ctx.store.batch(part.map((name) => ({ op: 'delete', ref: { kind: 'Volume', namespace: ns, name } })));
      } catch (e) {
        if (!(e instanceof NotFoundError)) throw e;
        // one of them is gone already (a retry after a crash): the others one by one
        for (const name of part) {
          try {
            await env.ctx.store.delete({ kind: 'Volume', namespace: ns, name });
          } catch (e2) {
            if (!(e2 instanceof NotFoundError)) throw e2;
          }
        }
      }
    }
  }

  /**
   * After a full storage or a missing template image: remove the volumes this attempt made
   * (`keep` = the volumes that were Ready before it), or all of them for a VC never ready.
   */
  async rollBack(keep: Set<string> | undefined): Promise<void> {
    const env = this.env;
    const vols = await volumesOf(env);
    const doomed = vols.filter((v) => !keep?.has(v.metadata.name));
    const order = (v: Volume): number => (v.spec?.role === 'original' ? 1 : 0);
    await this.removeVolumes(doomed.sort((a, b) => order(a) - order(b)).map((v) => v.metadata.name));
    if (!keep) await removePath(env.transport, env.vcDir);
  }
}

/** `v` with `status` (its observedGeneration the object's generation). */
function withStatus(v: Volume, status: Volume['status']): Volume {
  return { ...v, status: { ...status, observedGeneration: v.metadata.generation } };
}

function refOf(vc: VirtualCluster): ObjectRef {
  return { kind: 'VirtualCluster', namespace: vc.metadata.namespace, name: vc.metadata.name };
}
