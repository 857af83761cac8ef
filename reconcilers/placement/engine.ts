// The placement engine: API.md's "Placement semantics" as a pure, deterministic function.
//
// Contract (API.md, made exact):
// - Eligible nodes: Ready, not unschedulable, in natural name order (blade2 < blade10; ties of
//   natural order fall back to plain string order so the order is total).
// - A VM of (vcpus c, memory m) fits on a node when m <= free memory, the node hosts fewer than
//   maxVMs VMs (when maxVMs is set) and, in Strict mode only, c <= free cores. Lazy ignores cores.
//   Free = capacity - `used` (what VMs already bound there, of every VC, take).
// - Block: each VM in index order goes to the first node in the order it fits on.
// - Cyclic: VMs go round-robin over the eligible nodes starting at the first one, skipping nodes
//   a VM does not fit on.
// - All or nothing: when one VM does not fit, no VM of the cluster is bound, and `reasons` says
//   for every node why it cannot take the rest.
// - One hypervisor kind per cluster: a cluster asking for a kind (`hypervisor`) goes only to nodes
//   of that kind; a cluster that does not goes to nodes of one kind only, the first kind that
//   takes all of it, kinds tried in the order of their first node in placement order. Nodes of
//   another kind are reported as such in `reasons`. (Nodes of different kinds share nothing, so
//   each kind has its own tree below.)
//
// Speed: the nodes sit in a max segment tree keyed by free memory, free cores and free VM slots;
// "first node at or after p a VM fits on" descends the tree, pruning every subtree whose maxima
// cannot fit the VM. Since a VirtualCluster's VMs are homogeneous and placing only takes
// resources away, a node that refuses one VM of a cluster refuses every later one too, so Block
// fills a node with as many VMs as it takes at once and never looks back, and Cyclic's skipped
// nodes never need a second look within a round. Cost: O(VMs * log nodes) for Cyclic,
// O(nodes used * log nodes) for Block. (With three keys the pruning is not exact - a subtree may
// have enough memory in one leaf and enough cores in another - so a descent can visit more than
// one path; on real clusters the detours are short. hack/bench-placement measures it.)

import type { PlacementMode, PlacementStrategy } from '../../api/types.js';

export interface Usage {
  cores: number;
  memoryMiB: number;
  vms: number;
}

export interface NodeCapacity {
  name: string;
  ready: boolean;
  unschedulable: boolean;
  cores: number;
  memoryMiB: number;
  /** Undefined or absent: no cap on the number of VMs. */
  maxVMs?: number;
  /** What VMs already bound here (of every VC) take. */
  used: Usage;
  /** The node's hypervisor kind (PhysicalNode spec.hypervisor); absent: one unnamed kind. */
  hypervisor?: string;
}

export interface ClusterRequest {
  name: string;
  namespace: string;
  /** The number of VMs; VM i is `<name>-<i>`. */
  vms: number;
  vcpus: number;
  memoryMiB: number;
  strategy: PlacementStrategy;
  mode: PlacementMode;
  /** The only hypervisor kind the VMs may go to; absent: the first kind that takes all of them. */
  hypervisor?: string;
}

export interface ClusterPlacement {
  name: string;
  namespace: string;
  schedulable: boolean;
  /** nodes[i] is the PhysicalNode of VM i; empty when not schedulable. */
  nodes: string[];
  /**
   * Unschedulable: every node, with why it cannot take the VMs (ineligible, or what runs out,
   * and how many it could take before that). Schedulable: with `explain`, the nodes that cannot
   * take even one VM of the cluster; without, empty.
   */
  reasons: Record<string, string>;
  /** One line for the `Placed` condition. */
  message: string;
}

export interface PlaceOptions {
  /** Fill `reasons` for schedulable clusters too (costs O(nodes) per cluster). */
  explain?: boolean;
}

export interface MultiPlacement {
  clusters: ClusterPlacement[];
  /** What is used on every node after placing the schedulable clusters, by node name. */
  used: Map<string, Usage>;
}

/** Places one cluster onto the nodes. Pure and deterministic. */
export function placeCluster(
  nodes: readonly NodeCapacity[],
  cluster: ClusterRequest,
  opts: PlaceOptions = {},
): ClusterPlacement {
  return new KindedPlacement(nodes).place(cluster, opts);
}

/** Places the clusters in the given order; each sees what the ones before it took. */
export function placeClusters(
  nodes: readonly NodeCapacity[],
  clusters: readonly ClusterRequest[],
  opts: PlaceOptions = {},
): MultiPlacement {
  const state = new KindedPlacement(nodes);
  const out = clusters.map((c) => state.place(c, opts));
  return { clusters: out, used: state.usedByName() };
}

/**
 * The nodes split by hypervisor kind, one PlacementState each (a node is of one kind, so the kinds
 * share nothing); a cluster is placed within one kind.
 */
class KindedPlacement {
  /** Kinds in the order of their first node in placement order. */
  private readonly kinds = new Map<string, { state: PlacementState; nodes: NodeCapacity[] }>();

  constructor(nodes: readonly NodeCapacity[]) {
    const byKind = new Map<string, NodeCapacity[]>();
    for (const n of sortNodes(nodes)) {
      const k = n.hypervisor ?? '';
      const list = byKind.get(k);
      if (list) list.push(n);
      else byKind.set(k, [n]);
    }
    for (const [k, list] of byKind) this.kinds.set(k, { state: new PlacementState(list), nodes: list });
  }

  usedByName(): Map<string, Usage> {
    const m = new Map<string, Usage>();
    for (const { state } of this.kinds.values()) for (const [n, u] of state.usedByName()) m.set(n, u);
    return m;
  }

  place(c: ClusterRequest, opts: PlaceOptions): ClusterPlacement {
    // The common case: one kind, asked for or not.
    if (this.kinds.size <= 1 && (c.hypervisor === undefined || this.kinds.has(c.hypervisor))) {
      const only = this.kinds.values().next().value;
      return (only?.state ?? new PlacementState([])).place(c, opts);
    }
    const tried = c.hypervisor !== undefined ? [c.hypervisor] : [...this.kinds.keys()];
    const failures: { kind: string; r: ClusterPlacement; room: number }[] = [];
    for (const kind of tried) {
      const entry = this.kinds.get(kind);
      if (!entry) continue;
      const r = entry.state.place(c, opts);
      if (r.schedulable) {
        return opts.explain ? { ...r, reasons: { ...this.otherKinds(kind, c), ...r.reasons } } : r;
      }
      failures.push({ kind, r, room: entry.state.lastRoom });
    }
    const reasons: Record<string, string> = {};
    for (const f of failures) Object.assign(reasons, f.r.reasons);
    if (c.hypervisor !== undefined) Object.assign(reasons, this.otherKinds(c.hypervisor, c));
    const size = `${c.vms} VMs of ${fmt(c.vcpus)} vCPU and ${fmt(c.memoryMiB)} MiB (${c.strategy}, ${c.mode})`;
    const rooms = failures.map((f) => {
      const n = this.kinds.get(f.kind)!.nodes.length;
      return `room for ${f.room} on ${n} ${f.kind || 'unnamed'} node${n === 1 ? '' : 's'}`;
    });
    const head = c.hypervisor !== undefined
      ? (failures.length === 0
        ? `cannot place ${c.vms} VMs: there are no PhysicalNodes with hypervisor ${c.hypervisor} (spec.hypervisor)`
        : `cannot place ${size} on ${c.hypervisor} nodes (spec.hypervisor): ${rooms[0]}`)
      : `cannot place ${size} on nodes of one hypervisor kind: ${rooms.join(', ')}`;
    return { name: c.name, namespace: c.namespace, schedulable: false, nodes: [], reasons, message: reasonsMessage(head, reasons) };
  }

  /** Every node not of `kind`, with why it does not take the cluster. */
  private otherKinds(kind: string, c: ClusterRequest): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, { nodes }] of this.kinds) {
      if (k === kind) continue;
      for (const n of nodes) {
        out[n.name] = c.hypervisor !== undefined
          ? `hypervisor ${k || 'unnamed'}, the VirtualCluster asks for ${c.hypervisor}`
          : `hypervisor ${k || 'unnamed'}, the VirtualCluster is placed on ${kind || 'unnamed'} nodes`;
      }
    }
    return out;
  }
}

/** Natural order of names: digit runs compare as numbers (blade2 < blade10). Total order. */
export function compareNodeNames(a: string, b: string): number {
  return compareKeyed(naturalKey(a), naturalKey(b), a, b);
}

function naturalKey(s: string): string[] {
  return s.match(/\d+|\D+/g) ?? [];
}
function isDigits(s: string): boolean {
  const c = s.charCodeAt(0);
  return c >= 48 && c <= 57;
}
/** Compares digit runs by value without overflowing: strip leading zeros, then length, then text. */
function compareDigitRuns(x: string, y: string): number {
  const a = x.replace(/^0+(?=\d)/, '');
  const b = y.replace(/^0+(?=\d)/, '');
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The last orders sortNodes computed: the names it was given, in that order, and the permutation
 * that sorts them. Placement sorts the same cluster's nodes for every VC it places, twice (all
 * nodes as listed, then each hypervisor kind's in order): a natural sort of 1,000 names per call
 * was ~2.5 % of vc-manager's CPU at 10,000 sim VMs (hack/bench-scale).
 */
const lastOrders: { names: string[]; order: number[] }[] = [];
const ORDERS_KEPT = 4;

/** Sorts nodes into placement order (natural name order). Does not filter. */
export function sortNodes<T extends { name: string }>(nodes: readonly T[]): T[] {
  const known = lastOrders.find((m) => m.names.length === nodes.length && nodes.every((n, i) => n.name === m.names[i]));
  if (known) return known.order.map((i) => nodes[i]!);
  const keyed = nodes.map((n, i) => ({ i, name: n.name, k: naturalKey(n.name) }));
  keyed.sort((p, q) => compareKeyed(p.k, q.k, p.name, q.name));
  const m = { names: nodes.map((n) => n.name), order: keyed.map((x) => x.i) };
  lastOrders.unshift(m);
  lastOrders.length = Math.min(lastOrders.length, ORDERS_KEPT);
  return m.order.map((i) => nodes[i]!);
}

function compareKeyed(ka: string[], kb: string[], a: string, b: string): number {
  const n = Math.min(ka.length, kb.length);
  for (let i = 0; i < n; i++) {
    const x = ka[i]!;
    const y = kb[i]!;
    if (x === y) continue;
    const dx = isDigits(x);
    const dy = isDigits(y);
    if (dx && dy) {
      const c = compareDigitRuns(x, y);
      if (c !== 0) return c;
    } else if (dx !== dy) {
      return dx ? -1 : 1;
    } else {
      return x < y ? -1 : 1;
    }
  }
  if (ka.length !== kb.length) return ka.length - kb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

const NEG = -Infinity;

/**
 * The mutable state of one placement run: nodes in order, what is free on each, and the segment
 * tree over (free memory, free cores, free slots). Ineligible nodes hold -Infinity and never fit.
 */
class PlacementState {
  private readonly order: NodeCapacity[];
  private readonly n: number;
  private readonly size: number;
  private readonly memT: Float64Array;
  private readonly coreT: Float64Array;
  private readonly slotT: Float64Array;
  /** Per node (placement order): what is used now. */
  private readonly usedCores: Float64Array;
  private readonly usedMem: Float64Array;
  private readonly usedVms: Float64Array;
  private readonly eligible: Uint8Array;
  /** After an unschedulable place(): how many of the cluster's VMs the nodes had room for. */
  lastRoom = 0;

  constructor(nodes: readonly NodeCapacity[]) {
    this.order = sortNodes(nodes);
    this.n = this.order.length;
    let size = 1;
    while (size < this.n) size <<= 1;
    this.size = size;
    this.memT = new Float64Array(2 * size).fill(NEG);
    this.coreT = new Float64Array(2 * size).fill(NEG);
    this.slotT = new Float64Array(2 * size).fill(NEG);
    this.usedCores = new Float64Array(this.n);
    this.usedMem = new Float64Array(this.n);
    this.usedVms = new Float64Array(this.n);
    this.eligible = new Uint8Array(this.n);
    for (let i = 0; i < this.n; i++) {
      const nd = this.order[i]!;
      this.usedCores[i] = nd.used.cores;
      this.usedMem[i] = nd.used.memoryMiB;
      this.usedVms[i] = nd.used.vms;
      this.eligible[i] = nd.ready && !nd.unschedulable ? 1 : 0;
      if (this.eligible[i]) {
        const leaf = size + i;
        this.memT[leaf] = nd.memoryMiB - nd.used.memoryMiB;
        this.coreT[leaf] = nd.cores - nd.used.cores;
        this.slotT[leaf] = nd.maxVMs === undefined ? Infinity : nd.maxVMs - nd.used.vms;
      }
    }
    for (let j = size - 1; j >= 1; j--) this.pull(j);
  }

  usedByName(): Map<string, Usage> {
    const m = new Map<string, Usage>();
    for (let i = 0; i < this.n; i++) {
      m.set(this.order[i]!.name, {
        cores: this.usedCores[i]!,
        memoryMiB: this.usedMem[i]!,
        vms: this.usedVms[i]!,
      });
    }
    return m;
  }

  place(c: ClusterRequest, opts: PlaceOptions): ClusterPlacement {
    const strict = c.mode === 'Strict';
    const assigned = new Int32Array(Math.max(0, c.vms));
    // Nodes this cluster took from, with how many VMs, to roll back on failure.
    const taken = new Map<number, number>();
    let ok = true;
    if (c.strategy === 'Block') {
      let p = 0;
      let vm = 0;
      while (vm < c.vms) {
        const i = this.findFirst(p, c.memoryMiB, c.vcpus, strict);
        if (i < 0) {
          ok = false;
          break;
        }
        const k = Math.min(this.room(i, c, strict), c.vms - vm);
        for (let j = 0; j < k; j++) assigned[vm++] = i;
        this.take(i, c, k);
        taken.set(i, (taken.get(i) ?? 0) + k);
        p = i + 1;
      }
    } else {
      let p = 0;
      for (let vm = 0; vm < c.vms; vm++) {
        let i = this.findFirst(p, c.memoryMiB, c.vcpus, strict);
        if (i < 0 && p > 0) i = this.findFirst(0, c.memoryMiB, c.vcpus, strict);
        if (i < 0) {
          ok = false;
          break;
        }
        assigned[vm] = i;
        this.take(i, c, 1);
        taken.set(i, (taken.get(i) ?? 0) + 1);
        p = i + 1 >= this.n ? 0 : i + 1;
      }
    }
    if (!ok) {
      for (const [i, k] of taken) this.take(i, c, -k);
      const { reasons, room } = this.explain(c, strict, true);
      this.lastRoom = room;
      return {
        name: c.name,
        namespace: c.namespace,
        schedulable: false,
        nodes: [],
        reasons,
        message: unschedulableMessage(c, room, this.n, reasons),
      };
    }
    const names = Array.from(assigned, (i) => this.order[i]!.name);
    let reasons: Record<string, string> = {};
    if (opts.explain) {
      // Explain against the state before this cluster: undo, explain, redo (cheap: few nodes).
      for (const [i, k] of taken) this.take(i, c, -k);
      reasons = this.explain(c, strict, false).reasons;
      for (const [i, k] of taken) this.take(i, c, k);
    }
    return {
      name: c.name,
      namespace: c.namespace,
      schedulable: true,
      nodes: names,
      reasons,
      message: `${c.vms} VM${c.vms === 1 ? '' : 's'} placed on ${taken.size} node${taken.size === 1 ? '' : 's'} (${c.strategy}, ${c.mode})`,
    };
  }

  /** How many more VMs of `c` node i takes (eligible node), capped to keep it finite. */
  private room(i: number, c: ClusterRequest, strict: boolean): number {
    const leaf = this.size + i;
    let k = Number.MAX_SAFE_INTEGER;
    k = Math.min(k, this.slotT[leaf]!);
    k = Math.min(k, per(this.memT[leaf]!, c.memoryMiB));
    if (strict) k = Math.min(k, per(this.coreT[leaf]!, c.vcpus));
    return Math.max(0, Math.floor(k));
  }

  /** Takes (or, with k < 0, gives back) k VMs of `c` on node i. */
  private take(i: number, c: ClusterRequest, k: number): void {
    this.usedCores[i] = this.usedCores[i]! + k * c.vcpus;
    this.usedMem[i] = this.usedMem[i]! + k * c.memoryMiB;
    this.usedVms[i] = this.usedVms[i]! + k;
    const nd = this.order[i]!;
    let j = this.size + i;
    this.memT[j] = nd.memoryMiB - this.usedMem[i]!;
    this.coreT[j] = nd.cores - this.usedCores[i]!;
    this.slotT[j] = nd.maxVMs === undefined ? Infinity : nd.maxVMs - this.usedVms[i]!;
    // Up the tree until a node's maxima do not change (then no ancestor's do either).
    for (j >>= 1; j >= 1 && this.pull(j); j >>= 1);
  }

  /** Recomputes node j's maxima from its children; returns whether any of them changed. */
  private pull(j: number): boolean {
    const l = 2 * j;
    const r = l + 1;
    const m = Math.max(this.memT[l]!, this.memT[r]!);
    const c = Math.max(this.coreT[l]!, this.coreT[r]!);
    const s = Math.max(this.slotT[l]!, this.slotT[r]!);
    if (m === this.memT[j] && c === this.coreT[j] && s === this.slotT[j]) return false;
    this.memT[j] = m;
    this.coreT[j] = c;
    this.slotT[j] = s;
    return true;
  }

  /** The first node index >= from that one VM of (vcpus, mem) fits on, or -1. */
  private findFirst(from: number, mem: number, vcpus: number, strict: boolean): number {
    if (from >= this.n) return -1;
    // Fast path (Cyclic's usual case): the node at `from` itself has room.
    const leaf = this.size + from;
    if (this.memT[leaf]! >= mem && this.slotT[leaf]! >= 1 && (!strict || this.coreT[leaf]! >= vcpus)) return from;
    return this.descend(1, 0, this.size - 1, from, mem, vcpus, strict);
  }

  private descend(
    j: number, lo: number, hi: number, from: number, mem: number, vcpus: number, strict: boolean,
  ): number {
    if (hi < from) return -1;
    if (this.memT[j]! < mem || this.slotT[j]! < 1 || (strict && this.coreT[j]! < vcpus)) return -1;
    if (lo === hi) return lo;
    const mid = (lo + hi) >> 1;
    const r = this.descend(2 * j, lo, mid, from, mem, vcpus, strict);
    if (r >= 0) return r;
    return this.descend(2 * j + 1, mid + 1, hi, from, mem, vcpus, strict);
  }

  /**
   * Why nodes refuse VMs of `c`, against the current state. `all`: every node (with how many VMs
   * it would take before refusing); otherwise only the nodes that take none.
   */
  private explain(
    c: ClusterRequest, strict: boolean, all: boolean,
  ): { reasons: Record<string, string>; room: number } {
    const reasons: Record<string, string> = {};
    let room = 0;
    for (let i = 0; i < this.n; i++) {
      const nd = this.order[i]!;
      if (!this.eligible[i]) {
        const why: string[] = [];
        if (!nd.ready) why.push('not Ready');
        if (nd.unschedulable) why.push('cordoned');
        reasons[nd.name] = why.join(', ');
        continue;
      }
      const k = this.room(i, c, strict);
      room += Math.min(k, c.vms);
      if (k > 0 && !all) continue;
      const freeMem = nd.memoryMiB - this.usedMem[i]! - k * c.memoryMiB;
      const freeCores = nd.cores - this.usedCores[i]! - k * c.vcpus;
      const vms = this.usedVms[i]! + k;
      const why: string[] = [];
      if (nd.maxVMs !== undefined && vms >= nd.maxVMs) why.push(`maxVMs ${nd.maxVMs} reached`);
      if (freeMem < c.memoryMiB) {
        why.push(`insufficient memory (free ${fmt(freeMem)} MiB, need ${fmt(c.memoryMiB)} MiB)`);
      }
      if (strict && freeCores < c.vcpus) {
        why.push(`insufficient cores (Strict: free ${fmt(freeCores)}, need ${fmt(c.vcpus)})`);
      }
      // k is capped at MAX_SAFE_INTEGER only when nothing limits (zero-sized VMs, no maxVMs).
      const text = why.length > 0 ? why.join(', ') : 'no limit reached';
      reasons[nd.name] = k > 0 ? `room for ${k} VM${k === 1 ? '' : 's'}, then ${text}` : text;
    }
    return { reasons, room };
  }
}

/** How many of `need` fit in `free`; unlimited when need is 0 (and free is not negative). */
function per(free: number, need: number): number {
  if (need <= 0) return free >= 0 ? Number.MAX_SAFE_INTEGER : 0;
  return Math.floor(free / need);
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(2);
}

/** At most this many per-node reasons go into a condition message; `reasons` holds them all. */
export const MESSAGE_REASON_LIMIT = 16;

function unschedulableMessage(
  c: ClusterRequest, room: number, total: number, reasons: Record<string, string>,
): string {
  const head =
    total === 0
      ? `cannot place ${c.vms} VMs: there are no PhysicalNodes`
      : `cannot place ${c.vms} VMs of ${fmt(c.vcpus)} vCPU and ${fmt(c.memoryMiB)} MiB (${c.strategy}, ${c.mode}): room for ${room} on ${total} node${total === 1 ? '' : 's'}`;
  return reasonsMessage(head, reasons);
}

/** `head`, then at most MESSAGE_REASON_LIMIT of the per-node reasons. */
function reasonsMessage(head: string, reasons: Record<string, string>): string {
  const entries = Object.entries(reasons);
  const shown = entries.slice(0, MESSAGE_REASON_LIMIT).map(([n, r]) => `${n}: ${r}`);
  const more = entries.length - shown.length;
  return shown.length === 0
    ? head
    : `${head}; ${shown.join('; ')}${more > 0 ? `; and ${more} more node${more === 1 ? '' : 's'}` : ''}`;
}
