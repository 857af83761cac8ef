// The placement controllers (wired in operator/registry.ts):
//
// - placement/virtualcluster (key: VirtualCluster): binds the VC's VirtualNodes as planBinding
//   decides, in ONE store batch that also moves PhysicalNode.status.allocated of every node whose
//   allocation changes, then writes the VC's `Placed` condition and status.placement (over the
//   stored VC, only while its generation is the planned one). Every object in the batch carries its
//   resourceVersion, so two VCs placed at the same moment on the same node cannot both succeed:
//   the loser gets a Conflict, re-reads and re-plans. That is what keeps Strict mode from
//   overcommitting a node. The read is the VC and its VMs from the store (gets by name, see
//   fromStore: never a list of the namespace's VMs) and the PhysicalNodes from the cache, except
//   those a conflicting batch wrote, which are read from the store (nodesWith).
// - placement/allocation (key: PhysicalNode): keeps status.allocated equal to computeAllocation
//   (frees the allocation of VMs that went). It compares on the cache, through an index of the
//   VMs by node (BoundIndex). To write, it reads the PhysicalNode from the store (revision P)
//   and computes from a cache only once that cache holds every write of its kind up to P (else
//   it waits once, then reads the store), and writes with P: a binding is written with the node
//   in one batch, so one at or below P is in what was read, and one after P makes the write
//   conflict rather than be lost.
// - placement/migration (key: Migration): once a Migration Succeeded, binds its VM to the target
//   (spec.physicalNode), gives back its room on the source, and marks the Migration applied.
//
// Placement is the only writer of VirtualNode.spec.physicalNode, PhysicalNode.status.allocated,
// VirtualCluster.status.placement and the `Placed` condition.

import { setCondition } from '../../api/conditions.js';
import { BATCH_OPS } from '../../api/store/batch-chunks.js';
import { ConflictError, type BatchOp, type ListResult, type ObjectRef, type Store } from '../../api/store/types.js';
import type {
  ApiObject, Condition, Migration, PhysicalNode, VirtualCluster, VirtualClusterStatus, VirtualNode,
} from '../../api/types.js';
import type { CacheReader, ControllerSpec, ReconcileContext, ReconcileResult } from '../../controllers/types.js';
import type { SharedCache } from '../../controllers/cache.js';
import { mapOnChange } from '../../controllers/change-filter.js';
import { writeStatusOver } from '../../api/status-writer.js';
import { withFinalizer } from '../../api/finalizers.js';
import { computeAllocation, MIGRATION_APPLIED } from './allocation.js';
import { BoundIndex } from './allocation-index.js';
import {
  addUsage, phaseClass, planBinding, sameUsage, vmUsage, ZERO, PLACED, type BindingDecision, type NodeView,
} from './plan-binding.js';
import { virtualNodeName } from '../virtualcluster/plan.js';

/** Attempts of one reconcile after a Conflict (each re-reads from the store). */
const CONFLICT_ATTEMPTS = 6;
/** How long the allocation controller waits each time for a VirtualNode cache behind a node. */
const CACHE_WAIT_MS = 200;
/** Waits for a VirtualNode cache that moves but is still behind a node's revision, before reading the store. */
const CACHE_WAITS_MAX = 25;
/** How often an Unschedulable VC is tried again without any change seen. */
const UNSCHEDULABLE_RETRY_MS = 30_000;
/**
 * How long a new VC none of whose VirtualNodes exist yet goes without a WaitingForVirtualNodes
 * condition, from its creationTimestamp (whole seconds: up to a second less in fact).
 */
export const VM_WAIT_GRACE_MS = 30_000;

export interface PlacementOptions {
  /** VM_WAIT_GRACE_MS by default (tests shorten it). */
  vmWaitGraceMs?: number;
  /**
   * Finalizers a VM gets in the write that first binds it (none by default). The manager passes
   * the runtime's when it runs the runtime controller: the runtime adds it to every bound VM before
   * acting, and in its own write that was one more store write (and one more event for every
   * controller watching VMs) per VM: ~1 of 10.5 etcd transactions per VM (hack/bench-scale).
   * A manager without the runtime passes none, so its VMs' deletion waits for nobody.
   */
  bindFinalizers?: readonly string[];
}

/** The placement controllers; the allocation controller indexes the VMs of `cache` by node. */
export function placementControllers(cache: SharedCache, opts: PlacementOptions = {}): ControllerSpec[] {
  return [virtualClusterPlacementController(cache, opts), allocationController(cache), migrationBindingController()];
}

/**
 * How much longer placement leaves `vc` without a Placed condition while none of its VMs exist:
 * a VC just made whose VirtualNodes the VirtualCluster controller has not made yet (they come in
 * one batch, and their events queue the VC again). Writing Placed=False/WaitingForVirtualNodes
 * for each new VC first cost every one of them a status write (and each other controller of the
 * VC its event) before any binding: at 2,500 VCs applied at once, placement's queue went once
 * over all of them so before it bound any (hack/bench-scale, session 11). 0: write it now.
 */
function vmWaitLeft(vc: VirtualCluster, vns: readonly VirtualNode[], d: BindingDecision, graceMs: number, now = Date.now()): number {
  if (d.kind !== 'none' || d.condition.reason !== 'WaitingForVirtualNodes' || vns.length > 0) return 0;
  if (vc.status?.conditions?.some((c) => c.type === PLACED)) return 0;
  const born = Date.parse(vc.metadata.creationTimestamp ?? '');
  return Number.isNaN(born) ? 0 : Math.max(0, born + graceMs - now);
}

interface Snapshot {
  vc: VirtualCluster | undefined;
  vns: VirtualNode[];
}

/** The names of the VMs placement looks at: `<vc>-<i>` for i < spec.nodes (API.md), see liveNodes. */
function vmNames(vc: VirtualCluster | undefined): string[] {
  return vc?.spec ? Array.from({ length: vc.spec.nodes }, (_, i) => virtualNodeName(vc, i)) : [];
}

/** The VC and its VMs from the cache, with the nodes to plan over (the binder plans a write over its own). */
function fromCache(cache: CacheReader, key: ObjectRef): Snapshot & { pns: NodeView } {
  const vc = cache.get<VirtualCluster>({ kind: 'VirtualCluster', name: key.name, namespace: key.namespace });
  const vns = vmNames(vc)
    .map((name) => cache.get<VirtualNode>({ kind: 'VirtualNode', name, namespace: key.namespace }))
    .filter((v): v is VirtualNode => v?.spec?.cluster === key.name);
  return { vc, vns, pns: cacheNodeView(cache) };
}

/** The cache's PhysicalNodes as a NodeView: a lookup by name, the list only when a plan asks for it. */
function cacheNodeView(cache: CacheReader): NodeView {
  let all: PhysicalNode[] | undefined;
  return {
    get: (name) => cache.get<PhysicalNode>({ kind: 'PhysicalNode', name }),
    all: () => (all ??= cache.list<PhysicalNode>('PhysicalNode')),
  };
}

/**
 * The cache's PhysicalNodes with those named in `fresh` read from the store instead (a node gone
 * from the store is left out). The batch carries the resourceVersion of every node it writes, so
 * a node the cache held stale makes it conflict, and the retry reads that node from the store:
 * nodes the batch does not write do not matter to its safety. (Listing every node from the store
 * on each conflict made placement cost nodes x VCs: hack/bench-scale.)
 */
async function nodesWith(store: Store, cache: CacheReader, fresh: ReadonlySet<string>): Promise<PhysicalNode[]> {
  const cached = cache.list<PhysicalNode>('PhysicalNode');
  if (fresh.size === 0) return cached;
  const read = new Map<string, PhysicalNode | undefined>();
  await Promise.all([...fresh].map(async (name) => read.set(name, await store.tryGet<PhysicalNode>({ kind: 'PhysicalNode', name }))));
  const out = cached.flatMap((p) => (read.has(p.metadata.name) ? [] : [p]));
  for (const p of read.values()) if (p) out.push(p);
  return out;
}

/**
 * The VC and its VMs read from the store. The VMs are read one by one by name,
 * never by listing the namespace (with a thousand VCs in one namespace that list made placement
 * quadratic): planBinding looks only at the VMs `<vc>-<i>` with i < spec.nodes.
 */
async function fromStore(store: Store, key: ObjectRef, seen: VirtualCluster | undefined): Promise<Snapshot> {
  // Then the VC and its VMs at once (one round trip less on etcd), the names from the VC as last
  // seen (the cache's, or the previous attempt's); the VMs of a VC grown since are read after.
  const getVm = (name: string) => store.tryGet<VirtualNode>({ kind: 'VirtualNode', name, namespace: key.namespace });
  const guessed = vmNames(seen);
  const [vc, ...got] = await Promise.all([
    store.tryGet<VirtualCluster>({ kind: 'VirtualCluster', name: key.name, namespace: key.namespace }),
    ...guessed.map(getVm),
  ]) as [VirtualCluster | undefined, ...(VirtualNode | undefined)[]];
  const missing = vmNames(vc).slice(guessed.length);
  if (missing.length > 0) got.push(...await Promise.all(missing.map(getVm)));
  const wanted = new Set(vmNames(vc));
  return { vc, vns: got.filter((v): v is VirtualNode => v?.spec?.cluster === key.name && wanted.has(v.metadata.name)) };
}

/**
 * The PhysicalNodes this controller wrote, kept until the cache holds those versions: the next
 * plan sees its own last bindings (the cache lags by the watch's delay, and a stale node made the
 * next VC's batch conflict and be planned again: hack/bench-scale).
 */
class OwnNodeWrites {
  private readonly nodes = new Map<string, PhysicalNode>();

  note(written: readonly ApiObject[]): void {
    for (const o of written) if (o.kind === 'PhysicalNode') this.nodes.set(o.metadata.name, o as PhysicalNode);
  }

  /** `pns` with each node this controller wrote since in its written version. */
  over(pns: PhysicalNode[]): PhysicalNode[] {
    if (this.nodes.size === 0) return pns;
    return pns.map((p) => {
      const w = this.nodes.get(p.metadata.name);
      if (!w) return p;
      if (Number(p.metadata.resourceVersion) >= Number(w.metadata.resourceVersion)) {
        this.nodes.delete(p.metadata.name);
        return p;
      }
      return w;
    });
  }
}

/** A VC ready to be bound: its snapshot from the store and the nodes to plan over. */
interface BindJob {
  snap: Snapshot;
  /** Nodes read from the store after a conflict (the cache's otherwise), before this controller's own writes. */
  base: PhysicalNode[] | undefined;
  store: Store;
  /** Set when planned. */
  decision?: BindingDecision;
}

interface Queued { job: BindJob; done: (err?: unknown) => void }

/**
 * The binding batches of every worker, written by one writer at a time and grouped: the VCs that
 * became ready while a batch was on its way are planned one after another (no await in between)
 * over the nodes as this controller last wrote them plus what the VCs before them in the group
 * take, and written in ONE batch, each node once with the resourceVersion it was planned from. So
 * a VC is placed exactly as if the VCs had been planned one after another (Block still fills the
 * first node with room, Cyclic still spreads over every node with room), and the many VCs that
 * all want the first nodes with room no longer wait for each other's batch one by one: at 10,000
 * VMs the placement of VCs planned on the same nodes went one batch round trip per VC, ~5 VCs/s
 * (hack/bench-scale, session 11). A group that fails (a Conflict: a node or VM written by someone
 * else meanwhile) fails for every VC in it; each is planned again by its worker, with the nodes
 * it would have written read from the store.
 */
class GroupBinder {
  private readonly queue: Queued[] = [];
  private writing = false;

  constructor(private readonly own: OwnNodeWrites, private readonly nodes: () => PhysicalNode[], private readonly finalizers: readonly string[] = []) {}

  /**
   * Plans `job` in the next group (setting its decision and nodes) and resolves once its group is
   * written, or at once when it needs no binding; rejects with the group batch's error.
   */
  bind(job: BindJob): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ job, done: (err) => (err === undefined ? resolve() : reject(err)) });
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length > 0) await this.writeGroup();
    } finally {
      this.writing = false;
    }
  }

  /** Plans the queued jobs (as many as fit in one batch) and writes their bindings at once. */
  private async writeGroup(): Promise<void> {
    // Nodes the group writes, in their planned state (each keeps the resourceVersion it was read with).
    const touched = new Map<string, PhysicalNode>();
    const vmOps: BatchOp[] = [];
    const members: Queued[] = [];
    while (this.queue.length > 0) {
      const q = this.queue[0]!;
      const job = q.job;
      let d: BindingDecision;
      let pns: PhysicalNode[];
      try {
        pns = this.own.over(job.base ?? this.nodes()).map((p) => touched.get(p.metadata.name) ?? p);
        d = planBinding(job.snap.vc!, job.snap.vns, pns);
      } catch (err) {
        this.queue.shift();
        q.done(err);
        continue;
      }
      const byName = new Map(pns.map((p) => [p.metadata.name, p]));
      const newNodes = d.kind === 'bind' ? [...d.deltas.keys()].filter((n) => byName.has(n) && !touched.has(n)).length : 0;
      const ops = d.kind === 'bind' ? d.binds.length + newNodes : 0;
      if (members.length > 0 && vmOps.length + touched.size + ops > BATCH_OPS) break;
      this.queue.shift();
      job.decision = d;
      // A decision without a binding (Unschedulable, say) is settled with the group too: it may
      // rest on what the VCs before it in the group take, which a failed batch does not take.
      members.push(q);
      if (d.kind !== 'bind') continue;
      for (const b of d.binds) {
        let vn: VirtualNode = { ...b.vn, spec: { ...b.vn.spec!, physicalNode: b.node, vcpus: b.size.vcpus, memoryMiB: b.size.memoryMiB } };
        for (const f of this.finalizers) vn = withFinalizer(vn, f) ?? vn;
        vmOps.push({ op: 'update', object: vn });
      }
      for (const [node, delta] of d.deltas) {
        const pn = byName.get(node);
        if (!pn) continue; // a VM leaving a node that is gone: nothing to give back
        touched.set(node, { ...pn, status: { ...pn.status, allocated: addUsage(pn.status?.allocated ?? ZERO, delta) } });
      }
    }
    const ops: BatchOp[] = [...vmOps, ...[...touched.values()].map((object): BatchOp => ({ op: 'updateStatus', object }))];
    if (ops.length === 0) {
      for (const m of members) m.done();
      return;
    }
    try {
      this.own.note(await members[0]!.job.store.batch(ops));
    } catch (err) {
      for (const m of members) m.done(err);
      return;
    }
    for (const m of members) m.done();
  }
}

export function virtualClusterPlacementController(cache?: CacheReader, opts: PlacementOptions = {}): ControllerSpec {
  const graceMs = opts.vmWaitGraceMs ?? VM_WAIT_GRACE_MS;
  const own = new OwnNodeWrites();
  let binder: GroupBinder | undefined;
  // VCs that did not fit, woken when any PhysicalNode changes (room freed, uncordoned, Ready).
  const waiting = new Map<string, ObjectRef>();
  const refKey = (r: ObjectRef) => `${r.namespace ?? ''}/${r.name}`;
  return {
    name: 'placement/virtualcluster',
    forKind: 'VirtualCluster',
    // What planBinding and needsWrite read of the VC: not the other controllers' status writes.
    forSignature: (o) => {
      const vc = o as VirtualCluster;
      return [vc.metadata.uid, vc.metadata.generation, !!vc.metadata.deletionTimestamp, vc.status?.placement,
        vc.status?.conditions?.find((c) => c.type === PLACED)];
    },
    // Several at once: each reads its VC and VMs from the store, then their bindings are planned
    // one after another and written in group batches (GroupBinder): the result is that of one VC
    // after another. (Without such an order two VCs mostly picked the same first node with room
    // and one batch conflicted: ~4 batches per VC with 4 workers.)
    workers: 16,
    watches: [
      {
        kind: 'VirtualNode',
        // Only what planBinding reads of a VM (controllers/change-filter.ts): each of a VM's
        // other status writes re-planned its VC over every node (hack/bench-scale).
        map: mapOnChange(cache, vmBindingSignature, (o) => {
          const vn = o as VirtualNode;
          return vn.spec?.cluster
            ? [{ kind: 'VirtualCluster', name: vn.spec.cluster, namespace: vn.metadata.namespace }]
            : [];
        }),
      },
      { kind: 'PhysicalNode', map: () => [...waiting.values()] },
    ],
    async reconcile(key: ObjectRef, ctx: ReconcileContext): Promise<ReconcileResult> {
      // The cache answers "nothing to do" cheaply. It is not a consistent snapshot across kinds
      // (it may hold one VM of a batch and not yet the other), so every write is planned again
      // on a fresh read from the store, and carries the resourceVersions of that read.
      const cached = fromCache(ctx.cache, key);
      let snap: Snapshot = cached;
      let decision = snap.vc?.spec && !snap.vc.metadata.deletionTimestamp ? planBinding(snap.vc, snap.vns, cached.pns) : undefined;
      const left = decision ? vmWaitLeft(snap.vc!, snap.vns, decision, graceMs) : 0;
      if (left > 0) return { requeueAfterMs: left };
      if (decision && needsWrite(snap.vc!, decision)) {
        // The nodes a conflicting batch wrote: read from the store on the next attempts (nodesWith).
        const fresh = new Set<string>();
        for (let attempt = 1; ; attempt++) {
          const base = attempt === 1 ? undefined : await nodesWith(ctx.store, ctx.cache, fresh);
          snap = await fromStore(ctx.store, key, snap.vc);
          if (!snap.vc?.spec || snap.vc.metadata.deletionTimestamp) {
            decision = undefined;
            break;
          }
          // Planned over the nodes as this controller last wrote them, in the next group batch
          // (GroupBinder); the Placed condition is written after it, on its own.
          binder ??= new GroupBinder(own, () => ctx.cache.list<PhysicalNode>('PhysicalNode'), opts.bindFinalizers);
          const job: BindJob = { snap, base, store: ctx.store };
          try {
            await binder.bind(job);
          } catch (err) {
            if (!(err instanceof ConflictError) || attempt >= CONFLICT_ATTEMPTS) throw err;
            if (job.decision?.kind === 'bind') for (const node of job.decision.deltas.keys()) fresh.add(node);
            ctx.log.debug({ key: refKey(key), attempt }, 'placement conflict; re-reading and re-planning');
            continue;
          }
          decision = job.decision!;
          await writeDecision(ctx, snap.vc, decision);
          break;
        }
      }
      if (decision?.condition.reason === 'Unschedulable') {
        waiting.set(refKey(key), { kind: 'VirtualCluster', name: key.name, namespace: key.namespace });
        return { requeueAfterMs: UNSCHEDULABLE_RETRY_MS };
      }
      waiting.delete(refKey(key));
      return undefined;
    },
  };
}

function statusFor(vc: VirtualCluster, d: BindingDecision): VirtualClusterStatus {
  const gen = vc.metadata.generation ?? 0;
  return {
    ...vc.status,
    conditions: setCondition(vc.status?.conditions, d.condition, gen),
    placement: { strategy: d.applied.strategy, mode: d.applied.mode },
  };
}

function sameCondition(a: Condition | undefined, b: Condition | undefined): boolean {
  return !!a && !!b && a.status === b.status && a.reason === b.reason && a.message === b.message
    && a.observedGeneration === b.observedGeneration;
}

function needsWrite(vc: VirtualCluster, d: BindingDecision): boolean {
  if (d.kind === 'bind') return true;
  const status = statusFor(vc, d);
  const prev = vc.status?.conditions?.find((c) => c.type === PLACED);
  const next = status.conditions!.find((c) => c.type === PLACED);
  return !sameCondition(prev, next)
    || vc.status?.placement?.strategy !== d.applied.strategy || vc.status?.placement?.mode !== d.applied.mode;
}

/**
 * The VC's Placed condition and status.placement for decision `d`, over the stored VC (other
 * controllers write its status all the time: a Conflict re-reads it rather than re-planning).
 * Nothing is written when the VC's generation has moved on since the plan: the event of that
 * change brings a new plan (and the runtime starts nothing before Placed observes the generation).
 */
async function writePlaced(ctx: ReconcileContext, vc: VirtualCluster, d: BindingDecision): Promise<void> {
  const gen = vc.metadata.generation ?? 0;
  await writeStatusOver<VirtualCluster>(ctx.store, vc, (cur) => ((cur.metadata.generation ?? 0) !== gen ? undefined : statusFor(cur, d)));
}

/** Writes the decision's Placed condition (and Event), after its binding batch (GroupBinder). */
async function writeDecision(ctx: ReconcileContext, vc: VirtualCluster, d: BindingDecision): Promise<void> {
  const prev = vc.status?.conditions?.find((c) => c.type === PLACED);
  if (d.kind === 'none') {
    if (!needsWrite(vc, d)) return;
    await writePlaced(ctx, vc, d);
    if (d.condition.reason === 'Unschedulable' && prev?.reason !== 'Unschedulable') {
      ctx.events.record(vc, 'Warning', 'Unschedulable', d.condition.message ?? '');
    } else if ((d.condition.reason === 'RemapPending' || d.condition.reason === 'ResizePending') && prev?.reason !== d.condition.reason) {
      ctx.events.record(vc, 'Normal', d.condition.reason, d.condition.message ?? '');
    }
    return;
  }
  await writePlaced(ctx, vc, d);
  ctx.events.record(vc, 'Normal', 'Placed', `${d.condition.message}: ${d.binds.map((b) => `${b.vn.metadata.name}->${b.node}`).join(', ')}`);
}

/**
 * What planBinding reads of a VM (placement/virtualcluster's change filter): its phase only as
 * phaseClass (a VM going from Starting to Running re-planned its VC over every node: 1.77
 * placement reconciles per VM at 10,000, hack/bench-scale).
 */
export function vmBindingSignature(o: ApiObject): unknown {
  const vn = o as VirtualNode;
  return [vn.metadata.uid, vn.metadata.generation, phaseClass(vn), vn.status?.runningSize, !!vn.metadata.deletionTimestamp];
}

/**
 * What an allocation counts of a VM (computeAllocation): its binding and size (spec, as uid and
 * generation) and the size it runs with; not its other status writes, each of which woke its node
 * (6.9 allocation reconciles per VM, hack/bench-scale).
 */
export function vmAllocationSignature(o: ApiObject): unknown {
  return [o.metadata.uid, o.metadata.generation, (o as VirtualNode).status?.runningSize];
}

/** What an allocation counts of a Migration (migrationReserves): its target (spec), Failed, the applied mark. */
export function migrationAllocationSignature(o: ApiObject): unknown {
  return [o.metadata.uid, o.metadata.generation, (o as Migration).status?.phase === 'Failed', o.metadata.annotations?.[MIGRATION_APPLIED]];
}

export function allocationController(cache: SharedCache): ControllerSpec {
  const index = BoundIndex.of(cache);
  const migrationRevision = () => cache.informer('Migration').lastRevision();
  // Nodes whose careful path found the VirtualNode cache behind the node's revision, with that
  // revision, the cache's revision then and the waits so far: we wait for the cache while it
  // moves, then read the store.
  const waited = new Map<string, { need: number; seen: number; tries: number }>();
  // The VirtualNodes as last listed from the store, shared: every node whose careful path needs
  // them at a revision the list covers uses that one list, and nodes asking while a list is in
  // flight wait for it. Each node listed every VM of the store itself before (0.38 lists per VM
  // in hack/bench-scale at 3,000 VMs: lists x VMs, and under load those lists took over 10 s).
  let listed: ListResult<VirtualNode> | undefined;
  let listing: Promise<ListResult<VirtualNode>> | undefined;
  const vnsAtLeast = async (store: ReconcileContext['store'], need: number): Promise<VirtualNode[]> => {
    for (;;) {
      if (listed && listed.revision >= need) return listed.items;
      listing ??= store.list<VirtualNode>('VirtualNode').then((r) => (listed = r)).finally(() => (listing = undefined));
      const r = await listing;
      if (r.revision >= need) return r.items;
      // that list was read before `need` was written: the next one covers it
    }
  };
  return {
    name: 'placement/allocation',
    forKind: 'PhysicalNode',
    watches: [
      {
        kind: 'VirtualNode',
        map: (o) => {
          const n = (o as VirtualNode).spec?.physicalNode;
          return n ? [{ kind: 'PhysicalNode', name: n }] : [];
        },
        signature: vmAllocationSignature,
      },
      {
        kind: 'Migration',
        map: (o) => {
          const t = (o as Migration).spec?.targetNode;
          return t ? [{ kind: 'PhysicalNode', name: t }] : [];
        },
        signature: migrationAllocationSignature,
      },
    ],
    async reconcile(key: ObjectRef, ctx: ReconcileContext): Promise<ReconcileResult> {
      // Cheap check on the cache first: at rest, every node agrees and nothing is read.
      const cached = ctx.cache.get<PhysicalNode>({ kind: 'PhysicalNode', name: key.name });
      if (cached && sameUsage(index.allocation(key.name), cached.status?.allocated)) {
        waited.delete(key.name);
        return undefined;
      }
      // The careful path: the node from the store first, at revision P. Every write that adds to
      // a node's allocation (a binding, a drain's reservation) writes the node in the same batch,
      // so it is at or below P, or our write below (with P) conflicts. The cache of a kind may
      // lag the store: it is used only once it holds every write of that kind up to P. (The
      // VMs are read after the Migrations, so a Migration applied since is seen with its VM.)
      const pn = await ctx.store.tryGet<PhysicalNode>({ kind: 'PhysicalNode', name: key.name });
      if (!pn) {
        waited.delete(key.name);
        return undefined;
      }
      const rv = Number(pn.metadata.resourceVersion);
      // The Migrations onto this node (only they count for it): from the cache's index once the
      // cache is at P, else (its informer moves only with Migration writes) listed from the store.
      const migs = migrationRevision() >= rv
        ? index.migrationsOnto(key.name)
        : (await ctx.store.list<Migration>('Migration')).items.filter((m) => m.spec?.targetNode === key.name);
      // The VMs must be as new as the node, and as the Migrations onto it that were applied:
      // applying one re-binds its VM in the same batch, without writing the target node.
      const need = Math.max(rv, ...migs
        .filter((m) => m.metadata.annotations?.[MIGRATION_APPLIED] === 'true')
        .map((m) => Number(m.metadata.resourceVersion)));
      const vnsFresh = index.revision() >= need;
      const prev = waited.get(key.name);
      const tries = prev?.need === need ? prev.tries : 0;
      if (!vnsFresh && tries < CACHE_WAITS_MAX && (prev?.need !== need || index.revision() > prev.seen)) {
        // Usually the VirtualNode events of the batch that wrote the node are on their way (and
        // requeue the node themselves). An informer does not advance without writes of its
        // kind, though, so it cannot be waited for unboundedly: it is waited for again while it
        // moves (a busy manager's watch lags by seconds: one wait, then a store list, made most
        // nodes list every VM in hack/bench-scale), up to CACHE_WAITS_MAX times; the store is
        // read once a wait saw it stand still.
        waited.set(key.name, { need, seen: index.revision(), tries: tries + 1 });
        return { requeueAfterMs: CACHE_WAIT_MS };
      }
      waited.delete(key.name);
      const allocated = vnsFresh
        ? index.allocation(key.name, migs)
        : computeAllocation(key.name, await vnsAtLeast(ctx.store, need), migs);
      if (sameUsage(allocated, pn.status?.allocated)) return undefined;
      await ctx.store.updateStatus({ ...pn, status: { ...pn.status, allocated } });
      return undefined;
    },
  };
}

/**
 * What applying Succeeded Migration `mig` writes, from fresh reads of its VM and the VM's source
 * node: the Migration marked applied, the VM bound to the target, the source's room given back.
 */
async function migrationApplyOps(store: Store, mig: Migration & { spec: NonNullable<Migration['spec']> }): Promise<BatchOp[]> {
  const vn = await store.tryGet<VirtualNode>({ kind: 'VirtualNode', name: mig.spec.virtualNode, namespace: mig.metadata.namespace });
  const applied: Migration = {
    ...mig,
    metadata: { ...mig.metadata, annotations: { ...mig.metadata.annotations, [MIGRATION_APPLIED]: 'true' } },
  };
  const ops: BatchOp[] = [{ op: 'update', object: applied }];
  if (vn?.spec && vn.spec.physicalNode !== mig.spec.targetNode) {
    ops.push({ op: 'update', object: { ...vn, spec: { ...vn.spec, physicalNode: mig.spec.targetNode } } });
    // The target's room was reserved by the Migration and now counts as the bound VM; the
    // source gives its room back.
    const source = vn.spec.physicalNode
      ? await store.tryGet<PhysicalNode>({ kind: 'PhysicalNode', name: vn.spec.physicalNode })
      : undefined;
    if (source) {
      const allocated = addUsage(source.status?.allocated ?? ZERO, vmUsage(vn), -1);
      ops.push({ op: 'updateStatus', object: { ...source, status: { ...source.status, allocated } } });
    }
  }
  return ops;
}

export function migrationBindingController(): ControllerSpec {
  return {
    name: 'placement/migration',
    forKind: 'Migration',
    watches: [],
    // Each apply waits on the store (two reads, one batch): with the default 2 workers, a drain of
    // 100 sim nodes had its 3,200 Migrations Succeeded while ~2,000 waited here to be applied, the
    // VMs still bound to the drained nodes for another minute and more (hack/bench-scale
    // 1000:10000, session 20). Two applies off one source conflict on it and are redone at once.
    workers: 8,
    async reconcile(key: ObjectRef, ctx: ReconcileContext): Promise<ReconcileResult> {
      let mig = ctx.cache.get<Migration>({ kind: 'Migration', name: key.name, namespace: key.namespace });
      // A Conflict is redone at once over fresh reads (the Migration too), not through the work
      // queue's backoff: in a drain the migrations off one node end two at a time (the runtime's
      // limit per node), and each pair's applies both write the source node, while the runtime
      // writes the VMs' status; the loser's retries went through the queue's rate limiter (10
      // a second over the controller once 100 failed), about half of all applies failed once
      // (hack/bench-scale 3,000 VMs: 841 failed reconciles for 960 migrations).
      for (let attempt = 1; ; attempt++) {
        if (!mig?.spec || mig.status?.phase !== 'Succeeded' || mig.metadata.annotations?.[MIGRATION_APPLIED] === 'true') {
          return undefined;
        }
        const ops = await migrationApplyOps(ctx.store, mig as Migration & { spec: NonNullable<Migration['spec']> });
        try {
          await ctx.store.batch(ops);
          return undefined;
        } catch (err) {
          if (!(err instanceof ConflictError) || attempt >= CONFLICT_ATTEMPTS) throw err;
          ctx.log.debug({ key: `${key.namespace ?? ''}/${key.name}`, attempt }, 'migration apply conflict; re-reading');
          mig = await ctx.store.tryGet<Migration>(key);
        }
      }
    },
  };
}
