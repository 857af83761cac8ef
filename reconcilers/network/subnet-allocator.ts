// SubnetAllocator: race-free reservation of VirtualCluster subnets (used by network/subnets).
//
// Every VC's subnet is entered in one ledger object in the store (kind SubnetLedger,
// cluster-scoped, name `vc-subnets`; internal, not a kind users apply). A VC's status.subnet is
// only ever written in the same Store.batch as the ledger entry that reserves it, and that batch
// compares the ledger's resourceVersion (create-only while the ledger does not exist yet) and the
// VC's. So two allocators that pick the same or overlapping subnets (two workers, two controllers,
// two managers on one store, a deposed leader) cannot both commit: the loser's batch fails with
// ConflictError / AlreadyExistsError and is retried against the ledger as it is now. It uses
// nothing but Store.batch, so it is the same on etcd (one txn) and SQLite (one IMMEDIATE
// transaction). The informer cache is never trusted for what is taken; it is only a hint (it
// steers allocation away from subnets other VCs ask for but have not reserved yet).
//
// Contract:
// - reserve(vc): the subnet the VC should hold is spec.network.subnet when given, else its ledger
//   entry, else its status.subnet (written before the ledger existed), else the lowest free
//   /prefix of the pool. When that subnet overlaps no other entry and contains no physical node's
//   address, the ledger entry and status.subnet are written together (the VC's old entry, if any,
//   is released in the same batch: a changed spec.network.subnet). Otherwise nothing is written
//   and the conflict is returned: a VC keeps what it holds, and a duplicate is never entered.
// - release(ref): removes the entries of a VC that no longer exists (compared by uid; a deleting
//   VC keeps its subnet until it is gone). Releases asked for while another write is under way are
//   decided together on the stored ledger and written in one ledger write (a mass delete of 2,500
//   VCs wrote a ledger of up to ~250 KB once per VC, and listed every VC from the store once per
//   VC: work growing with the square of the VCs, hack/bench-scale).
// - A reservation is first tried from the cached VC and the ledger this allocator last saw (the
//   batch's compares reject it when either is stale, and it is retried on what the store holds);
//   a refusal (conflict, pool exhausted) and a release are only ever decided on the stored ledger.
// - Reservations asked for while one is being written are decided together, in the order asked,
//   and written in one batch (the ledger once, each VC's status.subnet with it; at most
//   GROUP_MAX VCs): one VC at a time, the ledger of every VC was written once per VC (2,500 VCs:
//   ~2,500 writes of a ledger growing to ~250 KB, hack/bench-scale). A race fails the whole group,
//   which is decided again on what the store holds.
// - Every reservation also drops entries of VCs that are gone (deleted while no manager ran); a
//   release drops, besides its own, only those whose name the cache shows held by another VC (no
//   list of the store: in a mass delete the cache misses most VCs, and each has its own release).
// - The first write creates the ledger from the VCs' stored status.subnet, oldest VC first: a VC
//   whose stored subnet overlaps an older one's is left out, and its reserve reports the conflict.
// - Size: about 100 bytes per VC in one object (etcd's default request limit of 1.5 MiB holds
//   about 10,000 VCs).

import { API_VERSION, type ApiObject, type VirtualCluster } from '../../api/types.js';
import {
  AlreadyExistsError, ConflictError, NotFoundError,
  type BatchOp, type ObjectRef, type Store,
} from '../../api/store/types.js';
import type { CacheReader } from '../../controllers/types.js';
import { getCondition } from '../../api/conditions.js';
import { allocateSubnet, contains, formatCidr, formatIp, overlaps, parseCidr, type Cidr } from './cidr.js';

/** The NetworkReady reason of a VC whose subnet is held by another VC or a physical node. */
export const SUBNET_CONFLICT = 'SubnetConflict';

/**
 * Whether the VC is reported in conflict: its subnet is not its own, so its VMs must get no taps,
 * routes or rules (they would take over addresses of the VC that holds it).
 */
export function hasSubnetConflict(vc: VirtualCluster | undefined): boolean {
  const c = getCondition(vc?.status?.conditions, 'NetworkReady');
  return c?.status === 'False' && c.reason === SUBNET_CONFLICT;
}

export const SUBNET_LEDGER_KIND = 'SubnetLedger';
export const SUBNET_LEDGER_NAME = 'vc-subnets';
const LEDGER_REF: ObjectRef = { kind: SUBNET_LEDGER_KIND, name: SUBNET_LEDGER_NAME };
/** Attempts of one reserve/release against a ledger that others keep changing (each failed
 * attempt means another writer got through), then the error goes to the controller's backoff. */
const MAX_ATTEMPTS = 30;
/** VCs reserved in one batch: with the ledger and a fence, well under etcd's default --max-txn-ops (128). */
export const GROUP_MAX = 32;

/** One reservation: `subnet` (normalized CIDR) is held by the VC with this uid. */
export interface SubnetEntry {
  subnet: string;
  namespace: string;
  name: string;
  uid: string;
}

export type SubnetLedger = ApiObject<{ entries: SubnetEntry[] }>;

export interface PhysicalAddress {
  node: string;
  ip: number;
}

export type ReserveResult =
  /** The VC holds `subnet`; `vc` is the VC as stored now. `allocated`: newly taken from the pool. */
  | { kind: 'reserved'; vc: VirtualCluster; subnet: string; allocated: boolean }
  /** `subnet` cannot be held: it overlaps `holder`'s entry or contains a physical node's address. */
  | { kind: 'conflict'; vc: VirtualCluster; subnet: string; source: 'spec' | 'status'; holder?: SubnetEntry; physical?: PhysicalAddress }
  | { kind: 'exhausted'; vc: VirtualCluster }
  /** spec.network.subnet is not a CIDR (validation normally refuses it before it is stored). */
  | { kind: 'invalid'; vc: VirtualCluster; message: string }
  /** The VC is not in the store (any more). */
  | { kind: 'gone' };

/** The status to write with a reservation (it must keep what it does not change). */
export type StatusFor = (vc: VirtualCluster, subnet: string) => NonNullable<VirtualCluster['status']>;

export interface AllocatorContext {
  store: Store;
  cache: CacheReader;
}

/** A reservation waiting for its group's turn. */
interface PendingReserve {
  ctx: AllocatorContext;
  ref: ObjectRef;
  physical: readonly PhysicalAddress[];
  statusFor: StatusFor;
  resolve: (r: ReserveResult) => void;
  reject: (e: unknown) => void;
}

/** A release waiting for its group's turn. */
interface PendingRelease {
  ctx: AllocatorContext;
  ref: ObjectRef;
  resolve: (released: string[]) => void;
  reject: (e: unknown) => void;
}

/** One VC's decision within a group: its result, and the status to write with the ledger. */
interface Decision {
  result: ReserveResult;
  status?: BatchOp;
}

export class SubnetAllocator {
  private chain: Promise<unknown> = Promise.resolve();
  /** The ledger as this allocator last read or wrote it: tried first, re-read when it is stale. */
  private known: SubnetLedger | undefined;
  private readonly pending: PendingReserve[] = [];
  private turnQueued = false;
  private readonly pendingReleases: PendingRelease[] = [];
  private releaseQueued = false;

  constructor(
    private readonly pool: Cidr,
    private readonly prefix: number,
  ) {
    if (prefix < pool.prefix || prefix > 30) throw new Error(`cannot allocate /${prefix} subnets from the pool ${formatCidr(pool)}`);
  }

  /**
   * Reserves the VC's subnet (see the contract above). A VC that the cache shows holding the
   * subnet this allocator last saw entered for it needs no store round trip: nothing would be
   * written, and whoever changes its entry also changes its status.subnet, which brings it back.
   */
  async reserve(ctx: AllocatorContext, ref: ObjectRef, physical: readonly PhysicalAddress[], statusFor: StatusFor = (vc, subnet) => ({ ...vc.status, subnet })): Promise<ReserveResult> {
    const cached = ctx.cache.get<VirtualCluster>(ref);
    const own = cached?.metadata.uid ? this.known?.spec?.entries.find((e) => e.uid === cached.metadata.uid) : undefined;
    if (cached?.spec && own && cached.status?.subnet === own.subnet && normalized(cached.spec.network?.subnet ?? own.subnet) === own.subnet) {
      const c = parseCidr(own.subnet);
      if (!physical.some((p) => contains(c, p.ip))) return { kind: 'reserved', vc: cached, subnet: own.subnet, allocated: false };
    }
    return new Promise<ReserveResult>((resolve, reject) => {
      this.pending.push({ ctx, ref, physical, statusFor, resolve, reject });
      this.queueTurn();
    });
  }

  /** Releases what a VC that no longer exists held. Returns the subnets released. */
  release(ctx: AllocatorContext, ref: ObjectRef): Promise<string[]> {
    return new Promise<string[]>((resolve, reject) => {
      this.pendingReleases.push({ ctx, ref, resolve, reject });
      this.queueRelease();
    });
  }

  /** Queues a turn that takes every waiting release and writes the ledger once for them. */
  private queueRelease(): void {
    if (this.releaseQueued) return;
    this.releaseQueued = true;
    void this.serial(async () => {
      this.releaseQueued = false;
      const group = this.pendingReleases.splice(0);
      try {
        const results = await retrying(() => this.releaseGroup(group));
        group.forEach((p, i) => p.resolve(results[i]!));
      } catch (e) {
        for (const p of group) p.reject(e);
      }
    });
  }

  /** One allocator's groups and releases run one at a time (others are held off by the compare). */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.chain.then(f, f);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Queues a turn that takes up to GROUP_MAX waiting reservations (one per VC: a second ask for a
   * VC in the group waits for the next turn) and decides and writes them together.
   */
  private queueTurn(): void {
    if (this.turnQueued) return;
    this.turnQueued = true;
    void this.serial(async () => {
      this.turnQueued = false;
      const group: PendingReserve[] = [];
      const keys = new Set<string>();
      for (let i = 0; i < this.pending.length && group.length < GROUP_MAX;) {
        const p = this.pending[i]!;
        const key = `${p.ref.namespace ?? ''}/${p.ref.name}`;
        if (keys.has(key)) { i++; continue; }
        keys.add(key);
        group.push(p);
        this.pending.splice(i, 1);
      }
      if (this.pending.length > 0) this.queueTurn();
      try {
        const results = await retrying((fresh) => this.reserveGroup(group, fresh));
        group.forEach((p, i) => p.resolve(results[i]!));
      } catch (e) {
        for (const p of group) p.reject(e);
      }
    });
  }

  /**
   * One attempt for a group. The first one (fresh = false) works from the cached VCs and the known
   * ledger; the batch's compares make it fail when any is stale, and the retries read them all
   * from the store. A refusal decided on what was not read from the store is decided again on it.
   */
  private async reserveGroup(group: readonly PendingReserve[], fresh: boolean): Promise<ReserveResult[]> {
    const ctx = group[0]!.ctx;
    const { ledger, entries, changed } = await this.readLedger(ctx, fresh);
    const parsed = new Map<string, Cidr>();
    const cidr = (text: string): Cidr => {
      let c = parsed.get(text);
      if (!c) parsed.set(text, (c = parseCidr(text)));
      return c;
    };
    let hints: (Cidr & { uid?: string })[] | undefined;
    const hinted = () => (hints ??= ctx.cache.list<VirtualCluster>('VirtualCluster').flatMap((o) =>
      [o.spec?.network?.subnet, o.status?.subnet].flatMap((s) => {
        const c = s ? tryParse(s) : undefined;
        return c ? [{ ...c, uid: o.metadata.uid }] : [];
      })));
    let current = entries;
    const decisions: Decision[] = [];
    for (const p of group) {
      const vc = (fresh ? undefined : p.ctx.cache.get<VirtualCluster>(p.ref)) ?? await p.ctx.store.tryGet<VirtualCluster>(p.ref);
      const d = this.decide(vc, current, p, fresh, cidr, hinted);
      if (d === 'stale') return this.reserveGroup(group, true);
      decisions.push(d);
      if (d.status && d.result.kind === 'reserved') { // (only a reservation has a status to write)
        const uid = d.result.vc.metadata.uid;
        const entry: SubnetEntry = { subnet: d.result.subnet, namespace: d.result.vc.metadata.namespace ?? '', name: d.result.vc.metadata.name, uid: uid! };
        current = [...current.filter((e) => e.uid !== uid), entry];
      }
    }
    const statusOps = decisions.flatMap((d) => (d.status ? [d.status] : []));
    // The ledger is written with a reservation: for one, or to drop entries of VCs that are gone
    // (`changed`) while reserving; a group of refusals writes nothing.
    if (statusOps.length === 0 && !(changed && decisions.some((d) => d.result.kind === 'reserved'))) return decisions.map((d) => d.result);
    const sorted = [...current].sort(byAddress(cidr));
    const [written, ...stored] = await ctx.store.batch([ledgerWrite(ledger, sorted), ...statusOps]);
    this.known = written as SubnetLedger;
    let k = 0;
    return decisions.map((d) => (d.status && d.result.kind === 'reserved' ? { ...d.result, vc: stored[k++] as VirtualCluster } : d.result));
  }

  /**
   * One VC's reservation against the entries as decided so far in its group: its result and,
   * when its entry or status.subnet must be written, the status write. 'stale': a refusal made
   * on what was not read from the store (the group is decided again on the store).
   */
  private decide(
    vc: VirtualCluster | undefined, entries: readonly SubnetEntry[], p: PendingReserve, fresh: boolean,
    cidr: (text: string) => Cidr, hinted: () => (Cidr & { uid?: string })[],
  ): Decision | 'stale' {
    if (!vc?.spec || !vc.metadata.uid) return { result: { kind: 'gone' } };
    const uid = vc.metadata.uid;
    const own = entries.find((e) => e.uid === uid);
    const others = entries.filter((e) => e.uid !== uid);

    let want: Cidr | undefined;
    let source: 'spec' | 'status' = 'status';
    let allocated = false;
    const specSubnet = vc.spec.network?.subnet;
    if (specSubnet) {
      try {
        want = parseCidr(specSubnet);
      } catch (e) {
        return { result: { kind: 'invalid', vc, message: `spec.network.subnet: ${(e as Error).message}` } };
      }
      source = 'spec';
    } else if (own) {
      want = cidr(own.subnet);
    } else if (vc.status?.subnet) {
      want = tryParse(vc.status.subnet);
    }
    if (!want) {
      // Hints from the cache: subnets other VCs ask for but have not reserved yet.
      const taken = [...others.map((e) => cidr(e.subnet)), ...hinted().filter((h) => h.uid !== uid), ...p.physical.map((ph) => ({ base: ph.ip, prefix: 32 }))];
      want = allocateSubnet(this.pool, this.prefix, taken);
      if (!want) return fresh ? { result: { kind: 'exhausted', vc } } : 'stale';
      allocated = true;
    }
    const subnet = formatCidr(want);
    const holder = others.find((e) => overlaps(cidr(e.subnet), want!));
    const phys = p.physical.find((ph) => contains(want!, ph.ip));
    if (holder || phys) {
      // A refusal is only ever made on what the store holds now, never on what this allocator knew.
      if (!fresh) return 'stale';
      return { result: { kind: 'conflict', vc, subnet, source, holder, physical: holder ? undefined : phys } };
    }
    const entryChanged = !own || own.subnet !== subnet || own.name !== vc.metadata.name || own.namespace !== (vc.metadata.namespace ?? '');
    const result: ReserveResult = { kind: 'reserved', vc, subnet, allocated };
    if (!entryChanged && vc.status?.subnet === subnet) return { result };
    return { result, status: { op: 'updateStatus', object: { ...vc, status: { ...p.statusFor(vc, subnet), subnet } } } };
  }

  /**
   * One attempt for a group of releases, always on the ledger as stored (an entry this allocator
   * has not seen is released too) and on each VC as stored (one re-created under the same name
   * keeps its entry). Returns the subnets released for each, in the group's order.
   */
  private async releaseGroup(group: readonly PendingRelease[]): Promise<string[][]> {
    const ctx = group[0]!.ctx;
    const [ledger, ...currents] = await Promise.all([
      ctx.store.tryGet<SubnetLedger>(LEDGER_REF),
      ...group.map((p) => ctx.store.tryGet<VirtualCluster>(p.ref)),
    ]) as [SubnetLedger | undefined, ...(VirtualCluster | undefined)[]];
    if (!ledger) return group.map(() => []);
    this.known = ledger;
    const key = (namespace: string, name: string) => `${namespace}/${name}`;
    // The uid each released name may keep (undefined: the name is free).
    const keeps = new Map(group.map((p, i) => [key(p.ref.namespace ?? '', p.ref.name), currents[i]?.metadata.uid]));
    const stored = ledger.spec?.entries ?? [];
    const released = new Map<string, string[]>();
    const kept = stored.filter((e) => {
      const k = key(e.namespace, e.name);
      if (keeps.has(k) && keeps.get(k) !== e.uid) {
        released.set(k, [...(released.get(k) ?? []), e.subnet]);
        return false;
      }
      const cached = ctx.cache.get<VirtualCluster>({ kind: 'VirtualCluster', name: e.name, ...(e.namespace ? { namespace: e.namespace } : {}) });
      return !cached || cached.metadata.uid === e.uid;
    });
    if (kept.length !== stored.length) {
      const [written] = await ctx.store.batch([ledgerWrite(ledger, kept)]);
      this.known = written as SubnetLedger;
    }
    return group.map((p) => released.get(key(p.ref.namespace ?? '', p.ref.name)) ?? []);
  }

  /**
   * The ledger as stored (undefined: not created yet), and its entries minus those of VCs that are
   * gone; without a ledger, the entries it starts from. `changed`: entries differ from the stored.
   */
  private async readLedger(ctx: AllocatorContext, fresh: boolean): Promise<{ ledger: SubnetLedger | undefined; entries: SubnetEntry[]; changed: boolean }> {
    const ledger = (fresh ? undefined : this.known) ?? await ctx.store.tryGet<SubnetLedger>(LEDGER_REF);
    if (!ledger) return { ledger, entries: await initialEntries(ctx.store), changed: true };
    const stored = ledger.spec?.entries ?? [];
    this.known = ledger;
    const entries = await existing(ctx, stored);
    return { ledger, entries, changed: entries.length !== stored.length };
  }
}

/**
 * Runs f again (after a short random pause), reading afresh, while the ledger or the VC changed
 * under it.
 */
async function retrying<T>(f: (fresh: boolean) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await f(attempt > 1);
    } catch (e) {
      if (!isRace(e) || attempt >= MAX_ATTEMPTS) throw e;
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(100, 2 ** attempt)));
    }
  }
}

/** The ledger or the VC changed since it was read (or went). A second copy of the store's error
 * classes is recognized by their instanceof (StoreError's, api/store/types.ts). */
function isRace(e: unknown): boolean {
  return e instanceof ConflictError || e instanceof AlreadyExistsError || e instanceof NotFoundError;
}

function ledgerWrite(ledger: SubnetLedger | undefined, entries: SubnetEntry[]): BatchOp {
  if (!ledger) {
    const object: SubnetLedger = { apiVersion: API_VERSION, kind: SUBNET_LEDGER_KIND, metadata: { name: SUBNET_LEDGER_NAME }, spec: { entries } };
    return { op: 'create', object };
  }
  return { op: 'update', object: { ...ledger, spec: { entries } } };
}

/**
 * The entries whose VC still exists. The cache answers for the VCs it holds (it never runs ahead
 * of the store, so another uid under that name means the entry's VC is gone); when it misses any,
 * one list of the store answers for the rest.
 */
async function existing(ctx: AllocatorContext, entries: readonly SubnetEntry[]): Promise<SubnetEntry[]> {
  const cached = entries.map((e) => ctx.cache.get<VirtualCluster>({ kind: 'VirtualCluster', name: e.name, ...(e.namespace ? { namespace: e.namespace } : {}) }));
  if (cached.every(Boolean)) return entries.filter((e, i) => cached[i]!.metadata.uid === e.uid);
  const uids = new Set((await ctx.store.list<VirtualCluster>('VirtualCluster')).items.map((v) => v.metadata.uid));
  return entries.filter((e, i) => (cached[i] ? cached[i]!.metadata.uid === e.uid : uids.has(e.uid)));
}

/**
 * The entries a new ledger starts with: every VC's stored status.subnet, oldest VC first, leaving
 * out any that overlaps one already entered (a duplicate from before subnets were reserved).
 */
async function initialEntries(store: Store): Promise<SubnetEntry[]> {
  const vcs = (await store.list<VirtualCluster>('VirtualCluster')).items
    .filter((vc) => vc.metadata.uid && vc.status?.subnet)
    .sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') ||
      Number(a.metadata.resourceVersion ?? 0) - Number(b.metadata.resourceVersion ?? 0) ||
      `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
  const out: SubnetEntry[] = [];
  for (const vc of vcs) {
    const c = tryParse(vc.status!.subnet!);
    if (!c || out.some((e) => overlaps(parseCidr(e.subnet), c))) continue;
    out.push({ subnet: formatCidr(c), namespace: vc.metadata.namespace ?? '', name: vc.metadata.name, uid: vc.metadata.uid! });
  }
  return out.sort(byAddress());
}

function normalized(s: string): string | undefined {
  const c = tryParse(s);
  return c && formatCidr(c);
}

function tryParse(s: string): Cidr | undefined {
  try {
    return parseCidr(s);
  } catch {
    return undefined;
  }
}

/** Entries in address order, their subnets parsed by `parse` (a group's parses are kept). */
function byAddress(parse: (text: string) => Cidr = parseCidr): (a: SubnetEntry, b: SubnetEntry) => number {
  return (a, b) => {
    const x = parse(a.subnet);
    const y = parse(b.subnet);
    return x.base - y.base || x.prefix - y.prefix;
  };
}

/** A conflict as a sentence for the VC's NetworkReady condition and its Warning Event. */
export function describeConflict(r: Extract<ReserveResult, { kind: 'conflict' }>): string {
  const what = r.source === 'spec' ? `spec.network.subnet ${r.subnet}` : `status.subnet ${r.subnet}`;
  if (r.physical) {
    return `${what} contains ${formatIp(r.physical.ip)}, the address of PhysicalNode ${r.physical.node}: choose another spec.network.subnet`;
  }
  const by = `${r.holder!.subnet} of VirtualCluster ${r.holder!.namespace}/${r.holder!.name}`;
  return r.source === 'spec'
    ? `${what} overlaps ${by}: choose another spec.network.subnet`
    : `${what} is a duplicate: it overlaps ${by}, which holds it; this VC's VMs are kept off the network until it has a subnet of its own (set spec.network.subnet to a free one, or delete the VC)`;
}
