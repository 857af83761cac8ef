// The network controllers.
// - `network/hosts` (key: PhysicalNode) makes each physical node's taps, routes and isolation table
//   equal to planHostNetwork(...) over every VM of every VC, records what changed as Events on the
//   node, and remembers which VMs each node has in place (for NetworkReady).
// - `network/subnets` (key: VirtualCluster) gives each VC its subnet (spec.network.subnet, or the
//   lowest free one of the pool, overlapping no other VC and no physical node's address) in
//   status.subnet, reserved race-free in the store by subnet-allocator.ts (released when the VC is
//   gone), and sets the VC's NetworkReady condition. A VC whose subnet is another's (an overlapping
//   spec, or a duplicate stored before reservations) is reported (SubnetConflict, Warning Events)
//   and its VMs are left out of every node's plan.
// Any change of a VM's host (start, migration, remap) re-plans every node: the target's tap is in
// place before a migration starts (Migrations name their target), and the old path goes once the
// VM's host has changed. The nodes a change concerns directly (the VM's hosts before and after, its
// migration's target, and every node hosting a VM of its VC: their taps, the VC's own routes
// between its VMs, its isolation rule where its VMs are, its NFS export) are re-planned at once;
// every other node only needs a route to it (traffic from outside the VC) and the VC's subnet in
// its isolation set, and is brought up to date by a paced refresh (RemoteRefresh below) that
// spends at most a third of the time on it: each node's plan is a pass over every VM, and
// re-planning all of them on each change made the work grow as nodes x VMs x changes
// (hack/bench-scale: ~75 ms per node at 10,000 VMs, 1,000 nodes per round).
// Shared storage over NFS: before the network, the hosts controller makes the node's nfs-ganesha
// export what the plan says (drivers/nfs) and reports it in the node's NfsReady condition (set
// only on nodes that serve or served NFS). A failure there (ganesha not installed, an export
// directory missing) is reported on the node and the VCs concerned; it does not undo or block the
// network of other VCs.
// OCFS2 shared storage (shared-fs.ts, docs/adr/0007): on a full node, before the network too, the
// hosts controller mounts the ocfs2 VCs' volumes its VMs need and exports them over the kernel NFS
// server (and unmounts what no VM here needs, and takes the node out of o2cb when it has none); a
// VM whose VC's volume is not served here gets no new tap here, so it is not booted (or switched
// over to here) before its guest can mount the shared storage.

import type { ApiObject, Migration, PhysicalNode, VirtualCluster, VirtualNode, Volume } from '../../api/types.js';
import type { ObjectRef } from '../../api/store/types.js';
import { getCondition, isConditionTrue, setCondition } from '../../api/conditions.js';
import { clusterSelector } from '../../api/labels.js';
import { domainName, domainNameOf } from '../../api/names.js';
import { Hash53, cacheState, cachedCount, mapOnChange, perCacheState } from '../../controllers/change-filter.js';
import { StallingError, type CacheReader, type ControllerSpec, type ReconcileContext, type ReconcileResult } from '../../controllers/types.js';
import { createHash } from 'node:crypto';
import type { Transport } from '../../drivers/transport/types.js';
import { HostNetworkDriver } from '../../drivers/network/host-network.js';
import { NfsServerDriver, NfsServerMissingError } from '../../drivers/nfs/nfs-server.js';
import { DEFAULT_RUN_ROOT } from '../runtime/hosts.js';
import { indexHostPlans, planHostFromIndex, planHostNetwork, type HostAddress, type HostNetworkState, type HostPlanIndex, type NfsShare, type RouteSpec, type VmNetwork } from './host-plan.js';
import { gatewayAddress, nfsPseudoPath, subnetOf, vmAddress } from './addresses.js';
import { formatCidr, parseCidr, parseIp } from './cidr.js';
import { SubnetAllocator, describeConflict, hasSubnetConflict, SUBNET_CONFLICT, type ReserveResult } from './subnet-allocator.js';
import { CleanSharedFsNodes, serveSharedFs } from './shared-fs.js';
import type { O2cbTimeouts } from '../../drivers/shared-fs/o2cb.js';

export const DEFAULT_SUBNET_POOL = '10.200.0.0/16';
export const DEFAULT_SUBNET_PREFIX = 24;

export interface NetworkDeps {
  transports: { get(node: PhysicalNode): Transport };
  /** Where VC subnets are allocated from; default 10.200.0.0/16 in /24s. */
  pool?: string;
  prefix?: number;
  /** How often a node's state is checked for drift; default 30 s. */
  resyncMs?: number;
  /** o2cb's timeouts on the full nodes; default O2CB_TCG_TIMEOUTS (QEMU TCG testbed nodes; ADR 0007). */
  o2cbTimeouts?: O2cbTimeouts;
}

/**
 * Which VMs each node had in place after its last successful apply (in this manager). Listeners
 * (`onAdded`) are told the VMs a node newly has in place (the subnets controller re-checks their
 * VCs' NetworkReady then, instead of polling them every 2 s: hack/bench-scale).
 */
export class AppliedNetworks {
  private readonly byHost = new Map<string, Set<string>>();
  private readonly listeners = new Set<(host: string, vms: readonly string[]) => void>();
  set(host: string, vms: Iterable<string>): void {
    const before = this.byHost.get(host);
    const now = new Set(vms);
    this.byHost.set(host, now);
    const added = [...now].filter((vm) => !before?.has(vm));
    if (added.length > 0) for (const l of this.listeners) l(host, added);
  }
  /** Calls `listener` with the VMs (domain names) a node newly has in place; returns the unsubscribe. */
  onAdded(listener: (host: string, vms: readonly string[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  has(host: string, vm: string): boolean {
    return this.byHost.get(host)?.has(vm) ?? false;
  }
  forget(host: string): void {
    this.byHost.delete(host);
  }
}

/**
 * A VM's network by its cached object (cached objects are replaced, never changed), kept while its
 * VC object and incoming migration target are the same: each pass over every VM (once per relevant
 * change) re-derived every address otherwise (hack/bench-scale).
 */
export type VmNetworkMemo = WeakMap<VirtualNode, { vc: VirtualCluster | undefined; inc: string | undefined; out: VmNetwork | undefined }>;

/** Every VM's network as seen in the cache: bound or running VMs of VCs that have a subnet of their own. */
export function observedVmNetworks(cache: CacheReader, memo?: VmNetworkMemo): VmNetwork[] {
  const vcs = new Map(cache.list<VirtualCluster>('VirtualCluster').map((vc) => [`${vc.metadata.namespace}/${vc.metadata.name}`, vc]));
  const incoming = new Map<string, string>();
  for (const m of cache.list<Migration>('Migration')) {
    const phase = m.status?.phase ?? 'Pending';
    if ((phase === 'Pending' || phase === 'Running') && m.spec) incoming.set(domainName(m.metadata.namespace, m.spec.virtualNode), m.spec.targetNode);
  }
  const out: VmNetwork[] = [];
  for (const vn of cache.list<VirtualNode>('VirtualNode')) {
    if (!vn.spec) continue;
    const vc = vcs.get(`${vn.metadata.namespace}/${vn.spec.cluster}`);
    const inc = incoming.size > 0 ? incoming.get(domainNameOf(vn)) : undefined;
    const known = memo?.get(vn);
    if (known && known.vc === vc && known.inc === inc) {
      if (known.out) out.push(known.out);
      continue;
    }
    const net = vmNetwork(vn, vc, inc);
    memo?.set(vn, { vc, inc, out: net });
    if (net) out.push(net);
  }
  return out;
}

function vmNetwork(vn: VirtualNode, vc: VirtualCluster | undefined, inc: string | undefined): VmNetwork | undefined {
  if (hasSubnetConflict(vc)) return undefined; // its addresses belong to another VC
  const addr = vmAddress(vc, vn);
  const host = vn.status?.host ?? vn.spec!.physicalNode;
  if (!addr || !host) return undefined;
  const { ip, subnet } = addr;
  return { key: domainNameOf(vn), cluster: `${vn.metadata.namespace}/${vn.spec!.cluster}`, ip, subnet, gateway: gatewayAddress(subnet), host, incomingHost: inc !== host ? inc : undefined };
}

/**
 * observedVmNetworks, computed once per state of the cache's VirtualClusters, VirtualNodes and
 * Migrations (their informers' revisions) and shared by every node's plan in between: the pass
 * over every VM is made once, not once per node. A cache without revisions: computed each time.
 */
const vmNetworksMemo = () => perCacheState(['VirtualCluster', 'VirtualNode', 'Migration'], observedVmNetworks);

/** The PhysicalNodes' addresses (a host name is skipped): no VC subnet may contain one. */
export function physicalAddresses(cache: CacheReader): { node: string; ip: number }[] {
  return cache.list<PhysicalNode>('PhysicalNode').flatMap((n) => {
    try {
      return [{ node: n.metadata.name, ip: parseIp(n.spec!.address) }];
    } catch {
      return []; // a host name, not an address
    }
  });
}

/** `previous` when `next` has the same elements (by `same`), else `next`: an unchanged list keeps its identity. */
export function sameElements<T>(previous: T[] | undefined, next: T[], same: (a: T, b: T) => boolean): T[] {
  return previous !== undefined && previous.length === next.length && previous.every((p, i) => same(p, next[i]!)) ? previous : next;
}

/** Every VC whose shared storage is nfs, with its shared Volume's directory once provisioned. */
export function observedNfsShares(cache: CacheReader): NfsShare[] {
  return cache.list<VirtualCluster>('VirtualCluster').flatMap((vc) => {
    if (vc.spec?.sharedStorage?.filesystem !== 'nfs') return [];
    const ns = vc.metadata.namespace;
    const vol = cache.get<Volume>({ kind: 'Volume', namespace: ns, name: `${vc.metadata.name}-shared` });
    const path = vol?.spec?.role === 'shared' && vol.spec.cluster === vc.metadata.name ? vol.status?.path : undefined;
    return [{ cluster: `${ns}/${vc.metadata.name}`, path }];
  });
}

/** The share of the time the paced refresh of other nodes may take: it waits twice a node's plan-and-apply time before the next. */
const REMOTE_REFRESH_WAIT_FACTOR = 2;
/** How long the paced refresh waits for a node it queued before moving on (a slow or failing node). */
const REMOTE_REFRESH_STEP_TIMEOUT_MS = 30_000;

/**
 * Nodes planned and applied at once. A node's reconcile mostly waits on its node (a few commands
 * per tap, one after another): with 2, at 3,000 VMs on 300 sim nodes each took ~1-2 s under load
 * and the first plan of every node took as long as the whole run, NetworkReady (351 s) gating
 * Running (hack/bench-scale 05:53 UTC, session 12).
 */
const HOST_WORKERS = 16;

/**
 * The share of network/hosts' time the periodic drift check of every node may take: a node is
 * checked again after resyncMs, or after every node's check at the mean reconcile time times this
 * factor over DRIFT_CHECK_LANES when that is longer. At 1,000 nodes a 30 s check of each kept both
 * workers busy with checks alone (~0.1 s of CPU per node plan and apply at 10,000 VMs, seconds
 * of wall time under load), and the plans a VM's start waits for queued behind them.
 */
export const DRIFT_CHECK_FACTOR = 4;
/**
 * The lanes the drift checks are spread over: a fixed number, not the workers. Divided by the
 * workers (16 since they were raised for the first plans), the spacing shrank 8-fold while the
 * manager has one core for them all (bench-scale 10,000, session 12: ~8,700 node plans).
 */
export const DRIFT_CHECK_LANES = 2;
/** And at least this much per node between two checks of one (100 nodes: 10 s; 1,000: 100 s), before anything was measured too. */
export const DRIFT_CHECK_MS_PER_NODE = 100;

/**
 * A digest of everything a node's apply puts in place. A node whose plan has the same digest as
 * its last complete apply, within the drift-check spacing, is not sent its commands again: each
 * VM started (its host written) made the paced refresh re-plan every node, and a sim node's apply
 * at 10,000 VMs lists 10,000 routes and the nftables table twice (~0.08 s of CPU) for a plan that
 * had not changed (hack/bench-scale).
 */
export function hostStateDigest(state: HostNetworkState): string {
  const h = createHash('sha256');
  h.update(JSON.stringify([state.taps, state.nfsExports, state.nftRuleComments]));
  h.update('\0');
  h.update(state.nftRuleset);
  h.update('\0');
  // The routes (thousands a node) through hash53: each route's own digest, made once per
  // RouteSpec (every node's plan shares its remote routes' objects), then mixed in order.
  const routes = new Hash53();
  for (const r of state.routes) {
    let d = ROUTE_DIGESTS.get(r);
    if (d === undefined) {
      d = new Hash53().update(r.dest).update(' ').update(r.dev ?? '').update(' ').update(r.via ?? '').digest();
      ROUTE_DIGESTS.set(r, d);
    }
    routes.updateDigest(d);
  }
  h.update(String(routes.digest()));
  return h.digest('hex');
}
const ROUTE_DIGESTS = new WeakMap<RouteSpec, number>();

/**
 * The time a reconcile counts for in the paced refresh's wait (RemoteRefresh.planned): one that
 * sent the node no commands (its plan unchanged) counts as the mean applying reconcile. Paced by
 * its own few milliseconds, the refresh re-planned every node over and over while changes came
 * (bench-scale 1,000 VMs: 2.98 network/hosts reconciles per VM against 0.85 before the skip).
 */
export function refreshPaceMs(tookMs: number, skipped: boolean, meanApplyMs: number): number {
  return skipped ? Math.max(tookMs, meanApplyMs) : tookMs;
}

/** The spacing of the VMs' networks' rebuilds (RebuildPace): this many times the last one's duration... */
export const REBUILD_SPACING_FACTOR = 2;
/**
 * ...and at least this much per VM rebuilt (10,000 VMs: 1 s). Each rebuild allocates anew every
 * VM's network and the index (~7 MB at 10,000 VMs), and paced by their duration alone they came
 * ~5 times a second in a drain: 2.1 of the 11 GB vc-manager allocated in the drain's first minute,
 * whose garbage grew its heap to ~1 GB (hack/bench-scale 1000:10000, session 21, a sampling
 * allocation profile). A migration waits for one rebuild (its target's tap), at most this long.
 */
export const REBUILD_MS_PER_VM = 0.1;

/**
 * Paces the rebuilds of every VM's network and of the index the node plans share (a pass over
 * every VM each): a plan that finds them stale waits until REBUILD_SPACING_FACTOR times the last
 * rebuild's duration has passed since it ended, then rebuilds, so the changes that came meanwhile
 * go into one rebuild. In a drain every Migration's phase and every VM's move is a change, and
 * nearly each node plan rebuilt both (hack/bench-scale 300:3000, session 20: indexHostPlans and
 * observedVmNetworks 17 of 226 CPU s in the whole run's profile; 8 paced).
 * Whatever waits is planned from a rebuild begun after it started waiting: nothing is missed.
 */
export class RebuildPace {
  private lastEnd = -Infinity;
  private lastMs = 0;
  private lastVms = 0;
  constructor(
    private readonly factor = REBUILD_SPACING_FACTOR,
    private readonly now: () => number = () => performance.now(),
    private readonly msPerVm = REBUILD_MS_PER_VM,
  ) {}
  /** How long a plan that finds the rebuild stale waits before rebuilding (0: at once). */
  delayMs(): number {
    const spacing = Math.max(this.factor * this.lastMs, this.msPerVm * this.lastVms);
    return Math.max(0, Math.ceil(this.lastEnd + spacing - this.now()));
  }
  /** A rebuild of `vms` VMs' networks that began at `startedAt` (this clock) has just ended. */
  rebuilt(startedAt: number, vms = 0): void {
    this.lastEnd = this.now();
    this.lastMs = this.lastEnd - startedAt;
    this.lastVms = vms;
  }
}

/** How long an unchanged node waits for its next drift check: resyncMs, or longer when the checks of every node would not fit in 1/DRIFT_CHECK_FACTOR of DRIFT_CHECK_LANES, or DRIFT_CHECK_MS_PER_NODE per node. */
export function driftCheckDelayMs(resyncMs: number, nodes: number, meanReconcileMs: number): number {
  return Math.max(resyncMs, nodes * DRIFT_CHECK_MS_PER_NODE, Math.ceil((nodes * meanReconcileMs * DRIFT_CHECK_FACTOR) / DRIFT_CHECK_LANES));
}

/**
 * Brings every node up to date with changes that concern it only remotely, one node at a time,
 * paced: after each node it waits REMOTE_REFRESH_WAIT_FACTOR times that node's reconcile time.
 * `stale()` says a change happened (every node is behind it until it is next planned); `planned`
 * records the change count a node's successful plan included.
 */
export class RemoteRefresh {
  private changes = 0;
  private readonly plannedAt = new Map<string, number>();
  private readonly waiters = new Map<string, () => void>();
  private wake?: () => void;
  private lastMs = 0;

  stale(): void {
    this.changes++;
    this.wake?.();
  }
  /** The change count a reconcile starting now includes. */
  get current(): number {
    return this.changes;
  }
  planned(node: string, at: number, tookMs: number): void {
    if (at > (this.plannedAt.get(node) ?? -1)) this.plannedAt.set(node, at);
    this.lastMs = tookMs;
    this.waiters.get(node)?.();
  }
  forget(node: string): void {
    this.plannedAt.delete(node);
    this.waiters.get(node)?.();
  }
  /** The ControllerSpec source: `nodes()` in name order, each behind the latest change queued in turn. */
  source(nodes: () => string[]): (enqueue: (ref: ObjectRef) => void) => () => void {
    return (enqueue) => {
      let stopped = false;
      const sleep = (ms: number) => new Promise<void>((r) => {
        const t = setTimeout(r, ms);
        this.wake = () => { clearTimeout(t); r(); };
      });
      void (async () => {
        let after = '';
        while (!stopped) {
          const names = nodes();
          const behind = names.filter((n) => (this.plannedAt.get(n) ?? -1) < this.changes);
          if (behind.length === 0) {
            await sleep(60_000); // until the next change
            continue;
          }
          // Round robin: the first behind after the last one queued.
          const next = behind.find((n) => n > after) ?? behind[0]!;
          after = next;
          const done = new Promise<void>((r) => {
            const t = setTimeout(r, REMOTE_REFRESH_STEP_TIMEOUT_MS);
            this.waiters.set(next, () => { clearTimeout(t); r(); });
          });
          enqueue({ kind: 'PhysicalNode', name: next });
          await done;
          this.waiters.delete(next);
          if (stopped) break;
          const wait = this.lastMs * REMOTE_REFRESH_WAIT_FACTOR;
          if (wait > 0) await new Promise<void>((r) => setTimeout(r, wait));
        }
      })();
      return () => {
        stopped = true;
        this.wake?.();
        for (const w of this.waiters.values()) w();
      };
    };
  }
}

export function networkHostController(cache: CacheReader, deps: NetworkDeps, applied: AppliedNetworks): ControllerSpec {
  const everyNode = (): ObjectRef[] =>
    cache.list<PhysicalNode>('PhysicalNode').map((pn) => ({ kind: 'PhysicalNode', name: pn.metadata.name }));
  const nodeRef = (name: string): ObjectRef => ({ kind: 'PhysicalNode', name });
  // The nodes a VM is on or bound to, and where it is being migrated.
  const hostsOfVm = (vn: VirtualNode, out: Set<string>): void => {
    if (vn.spec?.physicalNode) out.add(vn.spec.physicalNode);
    if (vn.status?.host) out.add(vn.status.host);
  };
  // The nodes each VM was last seen on (by namespace/name), so that a move re-plans its old node too.
  const lastHosts = new Map<string, Set<string>>();
  // Every node hosting a VM of the VC `namespace/name`, plus `extra`.
  const vcNodes = (namespace: string | undefined, vc: string | undefined, extra: Set<string>): ObjectRef[] => {
    if (vc) for (const v of cache.list<VirtualNode>('VirtualNode', { namespace, labelSelector: clusterSelector(vc) })) hostsOfVm(v, extra);
    return [...extra].map(nodeRef);
  };
  const remote = new RemoteRefresh();
  // Only a change of what the plans read re-plans (controllers/change-filter.ts), and only such a
  // change (counted here) makes the VMs' networks be computed again: keyed on the cache's
  // revisions instead, every VM status write between two node reconciles made each of them a pass
  // over every VM (nodes x VMs per round: hack/bench-scale at 3,000 VMs). The nodes it concerns
  // directly are queued; the others are left to the paced refresh.
  let relevantChanges = 0;
  const onChange = (signature: (o: ApiObject) => unknown, direct: (o: ApiObject) => ObjectRef[]) => mapOnChange(cache, signature, (o) => {
    relevantChanges++;
    remote.stale();
    return direct(o);
  });
  const vmDirect = (o: ApiObject): ObjectRef[] => {
    const vn = o as VirtualNode;
    const id = `${vn.metadata.namespace ?? ''}/${vn.metadata.name}`;
    const now = new Set<string>();
    hostsOfVm(vn, now);
    const nodes = new Set([...(lastHosts.get(id) ?? []), ...now]);
    // (a migration's target is queued by the Migration's own events)
    if (cache.get({ kind: 'VirtualNode', namespace: vn.metadata.namespace, name: vn.metadata.name })) lastHosts.set(id, now);
    else lastHosts.delete(id);
    return vcNodes(vn.metadata.namespace, vn.spec?.cluster, nodes);
  };
  const byRevision = vmNetworksMemo();
  const cleanSharedFs = new CleanSharedFsNodes();
  let memo: { at: string; value: VmNetwork[] } | undefined;
  const perVm: VmNetworkMemo = new WeakMap();
  // With the number of objects of each kind: a deletion while this manager did not lead (its
  // watch mappers unhooked; a new term replays only the objects that are still there) counts.
  const memoKey = (c: CacheReader): string =>
    [relevantChanges, ...['VirtualCluster', 'VirtualNode', 'Migration'].map((k) => cachedCount(c, k))].join(',');
  const vmNetworks = (c: CacheReader): VmNetwork[] => {
    // A reader without informers (a test's) has no watch feeding the count: computed each time.
    if (cacheState(c, []) === undefined) return byRevision(c);
    const at = memoKey(c);
    if (memo?.at !== at) memo = { at, value: observedVmNetworks(c, perVm) };
    return memo.value;
  };
  const pace = new RebuildPace();
  // Waits for the pace when the VMs' networks are stale (a reader without informers never waits).
  const pacedRebuild = async (c: CacheReader, signal: AbortSignal | undefined): Promise<void> => {
    if (cacheState(c, []) === undefined || memo?.at === memoKey(c)) return;
    const ms = pace.delayMs();
    if (ms > 0) await new Promise<void>((r) => setTimeout(r, ms));
    signal?.throwIfAborted();
  };
  // What every node's plan shares (host-plan.ts), kept while the VMs' networks (the memo above),
  // the nodes' addresses and the NFS shares are the same: one pass over every VM per change, not
  // one per node plan.
  // The nodes' addresses and the shares are compared by identity: each is the previous array
  // while its elements are equal (sameElements). A JSON text of both per node plan was ~250 KB
  // of garbage each at 10,000 VMs (hack/bench-scale, session 21).
  let planIndex: { vms: readonly VmNetwork[]; hosts: readonly HostAddress[]; shares: readonly NfsShare[]; index: HostPlanIndex } | undefined;
  const indexFor = (hosts: readonly HostAddress[], vms: readonly VmNetwork[], shares: readonly NfsShare[]): HostPlanIndex => {
    if (planIndex?.vms !== vms || planIndex.hosts !== hosts || planIndex.shares !== shares) planIndex = { vms, hosts, shares, index: indexHostPlans(hosts, vms, shares) };
    return planIndex.index;
  };
  let hostsMemo: HostAddress[] | undefined;
  const hostAddresses = (c: CacheReader): HostAddress[] => (hostsMemo = sameElements(hostsMemo,
    c.list<PhysicalNode>('PhysicalNode').map((n) => ({ name: n.metadata.name, address: n.spec!.address })),
    (a, b) => a.name === b.name && a.address === b.address));
  // The shares read every VC (and its shared Volume): once per change of either kind.
  let sharesMemo: NfsShare[] | undefined;
  const nfsShares = perCacheState(['VirtualCluster', 'Volume'], (c) => (sharesMemo = sameElements(sharesMemo, observedNfsShares(c),
    (a, b) => a.cluster === b.cluster && a.path === b.path)));
  let meanMs = 0; // the mean wall time of the reconciles that applied (an exponential moving average)
  // Each node's last complete apply: the digest of its state and when (hostStateDigest).
  const lastApplied = new Map<string, { digest: string; at: number }>();
  return {
    name: 'network/hosts',
    forKind: 'PhysicalNode',
    watches: [
      { kind: 'VirtualNode', map: onChange((o) => {
        const vn = o as VirtualNode;
        // The host its network follows (vmNetwork: status.host, else the binding), not both: a VM
        // that starts on the node it is bound to (its host written) changes no node's plan, and
        // each such write re-planned every node (bench-scale 10,000: 10,000 of them while Running).
        return [vn.spec?.cluster, vn.spec?.index, vn.status?.host ?? vn.spec?.physicalNode, !!vn.metadata.deletionTimestamp];
      }, vmDirect) },
      { kind: 'VirtualCluster', map: onChange((o) => {
        const vc = o as VirtualCluster;
        // The subnet the VMs' addresses come from (subnetOf: the spec's, else the status'), not
        // both: a VC that names its subnet has it written into status.subnet by network/subnets
        // too, which changes no address, and each such write re-planned the VC's nodes at once
        // and marked every other node stale (bench-scale 10,000: 2,500 writes at ~2 a second
        // while the VMs started, ~9 node plans a second over 10,000 routes each).
        return [subnetOf(vc), vc.spec?.sharedStorage, hasSubnetConflict(vc), !!vc.metadata.deletionTimestamp];
      }, (o) => vcNodes(o.metadata.namespace, o.metadata.name, new Set())) },
      { kind: 'Migration', map: onChange((o) => [(o as Migration).spec, (o as Migration).status?.phase ?? 'Pending'], (o) => {
        const m = o as Migration;
        if (!m.spec) return [];
        const vn = cache.get<VirtualNode>({ kind: 'VirtualNode', namespace: m.metadata.namespace, name: m.spec.virtualNode });
        const nodes = new Set([m.spec.targetNode]);
        if (vn) hostsOfVm(vn, nodes);
        return vcNodes(m.metadata.namespace, vn?.spec?.cluster, nodes);
      }) },
      // A shared volume's path appearing adds an NFS export; other volumes do not matter here.
      { kind: 'Volume', map: (v) => ((v as Volume).spec?.role === 'shared' ? everyNode() : []) },
    ],
    sources: [remote.source(() => cache.list<PhysicalNode>('PhysicalNode').map((pn) => pn.metadata.name).sort())],
    workers: HOST_WORKERS,
    async reconcile(ref: ObjectRef, ctx: ReconcileContext): Promise<ReconcileResult> {
      const started = performance.now();
      const at = remote.current;
      let skipped = false;
      try {
        const r = await reconcileNode(ref, ctx);
        skipped = r.skipped;
        return r.result;
      } finally {
        if (!skipped) meanMs = meanMs === 0 ? performance.now() - started : meanMs * 0.9 + (performance.now() - started) * 0.1;
        // Planned (or failed, or not Ready: the retry or its own requeue plans it again whole):
        // the paced refresh need not queue it for the changes up to `at`.
        if (ctx.cache.get(ref)) remote.planned(ref.name, at, refreshPaceMs(performance.now() - started, skipped, meanMs));
        else remote.forget(ref.name);
      }
    },
  };

  async function reconcileNode(ref: ObjectRef, ctx: ReconcileContext): Promise<{ result: ReconcileResult; skipped: boolean }> {
    const pn = ctx.cache.get<PhysicalNode>(ref);
    if (!pn || pn.metadata.deletionTimestamp) {
      applied.forget(ref.name);
      lastApplied.delete(ref.name);
      return { result: undefined, skipped: false };
    }
    if (!isConditionTrue(pn.status?.conditions, 'Ready')) {
      lastApplied.delete(ref.name); // back Ready: applied in full
      return { result: { requeueAfterMs: 5_000 }, skipped: false }; // unreachable nodes are probed by the node controller
    }
    const hosts = hostAddresses(ctx.cache);
    const shares = nfsShares(ctx.cache);
    const transport = deps.transports.get(pn);
    await pacedRebuild(ctx.cache, ctx.signal);
    const rebuildStart = performance.now();
    const [vmsBefore, indexBefore] = [memo?.value, planIndex?.index];
    const allVms = vmNetworks(ctx.cache);
    const index = indexFor(hosts, allVms, shares);
    if (allVms !== vmsBefore || index !== indexBefore) pace.rebuilt(rebuildStart, allVms.length);
    const shared = await serveSharedFs(ctx, pn, transport, allVms, cleanSharedFs, deps.o2cbTimeouts);
    const state = shared.notServed.size === 0
      ? planHostFromIndex(pn.metadata.name, index)
      : planHostNetwork(pn.metadata.name, hosts, holdBack(pn.metadata.name, allVms, shared.notServed, applied), shares);
    const resyncMs = deps.resyncMs ?? 30_000;
    const driftMs = driftCheckDelayMs(resyncMs, hosts.length, meanMs);
    const digest = hostStateDigest(state);
    const last = lastApplied.get(pn.metadata.name);
    const now = Date.now();
    if (shared.notServed.size === 0 && last?.digest === digest && now - last.at < driftMs) {
      // The same plan as the last complete apply, checked less than the drift spacing ago.
      if (await reportNfs(ctx, pn, state, shares, undefined)) {
        if (shared.changed.length > 0) ctx.events.record(pn, 'Normal', 'NetworkChanged', shared.changed.slice(0, 8).join('; '));
        return { result: { requeueAfterMs: Math.max(1_000, last.at + driftMs - now) }, skipped: true };
      }
    }
    lastApplied.delete(pn.metadata.name);
    // NFS first: a tap in place is what lets the runtime start a VM or switch a migration over,
    // so the guest's NFS server answers by the time the guest can reach it. Its failure is
    // reported below and does not stop the network.
    const nfs = await serveNfs(new NfsServerDriver(transport, { runRoot: pn.spec!.runRoot ?? DEFAULT_RUN_ROOT }), state);
    const driver = new HostNetworkDriver(transport);
    const { changed } = await driver.apply(state);
    applied.set(pn.metadata.name, state.taps.map((t) => t.vm));
    changed.push(...shared.changed, ...nfs.changed);
    const nfsOk = await reportNfs(ctx, pn, state, shares, nfs.error);
    if (changed.length > 0) {
      ctx.log.info({ node: pn.metadata.name, changed }, 'network converged');
      ctx.events.record(pn, 'Normal', 'NetworkChanged', changed.slice(0, 8).join('; ') + (changed.length > 8 ? `; and ${changed.length - 8} more` : ''));
    }
    const retrySoon = !nfsOk || shared.notServed.size > 0;
    if (!retrySoon) lastApplied.set(pn.metadata.name, { digest, at: now });
    return { result: { requeueAfterMs: retrySoon ? Math.min(resyncMs, 10_000) : driftMs }, skipped: false };
  }
}

/**
 * The VMs as this node's plan sees them: a VM of a VC whose shared storage is not served here
 * (`notServed`) gets no NEW tap here (left out when it runs here, its incoming migration left out
 * when it comes here); a tap already in place stays (a failing re-check must not cut a running VM off).
 */
export function holdBack(host: string, vms: readonly VmNetwork[], notServed: ReadonlySet<string>, applied: AppliedNetworks): VmNetwork[] {
  if (notServed.size === 0) return [...vms];
  return vms.flatMap((vm) => {
    if (!notServed.has(vm.cluster) || applied.has(host, vm.key)) return [vm];
    if (vm.host === host) return [];
    return vm.incomingHost === host ? [{ ...vm, incomingHost: undefined }] : [vm];
  });
}

async function serveNfs(nfs: NfsServerDriver, state: HostNetworkState): Promise<{ changed: string[]; error?: Error }> {
  try {
    return await nfs.apply(state.nfsExports);
  } catch (e) {
    return { changed: [], error: e instanceof Error ? e : new Error(String(e)) };
  }
}

/** Reports the NFS outcome in the node's NfsReady condition, and failures as Warning events. */
async function reportNfs(ctx: ReconcileContext, pn: PhysicalNode, state: HostNetworkState, shares: readonly NfsShare[], err: Error | undefined): Promise<boolean> {
  const prev = getCondition(pn.status?.conditions, 'NfsReady');
  let cond: { type: string; status: 'True' | 'False'; reason: string; message: string };
  if (!err) {
    if (state.nfsExports.length === 0 && prev === undefined) return true; // never served NFS: no condition
    cond = state.nfsExports.length === 0
      ? { type: 'NfsReady', status: 'True', reason: 'NothingToServe', message: 'no VC with nfs shared storage runs here' }
      : { type: 'NfsReady', status: 'True', reason: 'Serving', message: `serving ${state.nfsExports.map((e) => `${e.pseudo} to ${e.clients}`).join(', ')} on TCP 2049` };
  } else {
    const reason = err instanceof NfsServerMissingError ? 'NfsServerMissing' : 'NfsExportFailed';
    cond = { type: 'NfsReady', status: 'False', reason, message: err.message };
    ctx.log.error({ node: pn.metadata.name, err }, 'nfs exports not in place');
    ctx.events.record(pn, 'Warning', reason, err.message);
    const exported = new Set(state.nfsExports.map((e) => e.pseudo));
    for (const share of shares) {
      if (!exported.has(nfsPseudoPath(share.cluster))) continue;
      const [namespace, name] = share.cluster.split('/');
      const vc = ctx.cache.get<VirtualCluster>({ kind: 'VirtualCluster', namespace, name });
      if (vc) ctx.events.record(vc, 'Warning', reason, `shared storage not served on ${pn.metadata.name}: ${err.message}`);
    }
  }
  if (prev?.status !== cond.status || prev?.reason !== cond.reason || prev?.message !== cond.message) {
    const gen = pn.metadata.generation ?? 0;
    await ctx.store.updateStatus<PhysicalNode>({ ...pn, status: { ...pn.status, conditions: setCondition(pn.status?.conditions, cond, gen) } });
  }
  return cond.status === 'True';
}

/** The VirtualNode whose domain is `key` (`<namespace>.<name>`, api/names.ts) in the cache. */
export function virtualNodeOfDomain(cache: CacheReader, key: string): VirtualNode | undefined {
  for (let i = key.indexOf('.'); i > 0; i = key.indexOf('.', i + 1)) {
    const vn = cache.get<VirtualNode>({ kind: 'VirtualNode', namespace: key.slice(0, i), name: key.slice(i + 1) });
    if (vn) return vn;
  }
  return undefined;
}

/** How often a VC whose routes are not all in place is checked again besides the wake-ups (AppliedNetworks.onAdded). */
const ROUTES_PENDING_RECHECK_MS = 15_000;

/**
 * A pending VC's NetworkReady message (the VMs whose routes are not in place yet) is written again
 * at most once per this long while only that list shrinks: each node putting a VM's routes in
 * place was a VC status write (0.58 of network/subnets' per VM until Running at 10,000 VMs,
 * hack/bench-scale, session 25). Its first write, a change of status, reason or subnet, and the
 * turn to True are written at once.
 */
export const PENDING_MESSAGE_MS = 5_000;

/** network/subnets' workers (see its spec). */
export const SUBNET_WORKERS = 8;

export function networkSubnetController(deps: NetworkDeps, applied: AppliedNetworks, cache?: CacheReader): ControllerSpec {
  const pool = parseCidr(deps.pool ?? DEFAULT_SUBNET_POOL);
  const prefix = deps.prefix ?? DEFAULT_SUBNET_PREFIX;
  const allocator = new SubnetAllocator(pool, prefix);
  // Parsed once per state of the cache's PhysicalNodes, not per VC reconcile (each VC is
  // reconciled every 2 s until its routes are in place: VCs x nodes parses, hack/bench-scale).
  const physicalOf = perCacheState(['PhysicalNode'], physicalAddresses);
  // When each pending VC's (namespace/name) NetworkReady message was last written (PENDING_MESSAGE_MS).
  // Memory only: after a restart a message is written once more, sooner.
  const messageWritten = new Map<string, number>();
  return {
    name: 'network/subnets',
    forKind: 'VirtualCluster',
    // The allocator decides the releases (and reservations) asked for while one is written
    // together, so a group holds at most one per worker (the default two: a mass delete of 2,500
    // VCs wrote the ledger 1,250 times). Not GROUP_MAX: every VC's NetworkReady was then written
    // at each route put in place, ~1 more status write per VM (hack/bench-scale, 10,000 VMs).
    workers: SUBNET_WORKERS,
    // What it reads of the VC (its subnet, NetworkReady, and whether it holds a conflicting one).
    forSignature: (o) => {
      const vc = o as VirtualCluster;
      return [vc.metadata.uid, vc.metadata.generation, !!vc.metadata.deletionTimestamp, vc.status?.subnet,
        getCondition(vc.status?.conditions, 'NetworkReady')];
    },
    owns: ['VirtualNode'],
    // Read for their addresses (no subnet may contain one); a node's change moves no subnet.
    watches: [{ kind: 'PhysicalNode', map: () => [] }],
    // A node that put VMs' routes in place: their VCs' NetworkReady may turn True.
    sources: cache ? [(enqueue) => applied.onAdded((_host, vms) => {
      const seen = new Set<string>();
      for (const key of vms) {
        const vn = virtualNodeOfDomain(cache, key);
        if (!vn?.spec || seen.has(`${vn.metadata.namespace}/${vn.spec.cluster}`)) continue;
        seen.add(`${vn.metadata.namespace}/${vn.spec.cluster}`);
        enqueue({ kind: 'VirtualCluster', namespace: vn.metadata.namespace, name: vn.spec.cluster });
      }
    })] : [],
    async reconcile(ref: ObjectRef, ctx: ReconcileContext): Promise<ReconcileResult> {
      const cached = ctx.cache.get<VirtualCluster>(ref);
      if (!cached) {
        messageWritten.delete(`${ref.namespace ?? ''}/${ref.name}`);
        const released = await allocator.release(ctx, ref);
        if (released.length > 0) ctx.log.info({ released }, 'subnet released');
        return undefined;
      }
      if (!cached.spec) return undefined;
      const physical = physicalOf(ctx.cache);
      const vns = ctx.cache.list<VirtualNode>('VirtualNode', { namespace: cached.metadata.namespace, labelSelector: clusterSelector(cached.metadata.name) });
      const hosted = vns.filter((vn) => vn.status?.host ?? vn.spec?.physicalNode);
      const missing = hosted.filter((vn) => !applied.has((vn.status?.host ?? vn.spec!.physicalNode)!, domainNameOf(vn)));
      const networkCondition = (subnet: string) =>
        hosted.length === 0
          ? { type: 'NetworkReady', status: 'False' as const, reason: 'WaitingForPlacement', message: `subnet ${subnet}; no node is placed yet` }
          : missing.length > 0
            ? { type: 'NetworkReady', status: 'False' as const, reason: 'RoutesPending', message: `routes and rules not yet in place for ${missing.map((v) => v.metadata.name).join(', ')}` }
            : { type: 'NetworkReady', status: 'True' as const, reason: 'RoutesInPlace', message: `subnet ${subnet}: ${hosted.length} nodes routed and isolated` };
      const withSubnet = (v: VirtualCluster, subnet: string) =>
        ({ ...v.status, subnet, conditions: setCondition(v.status?.conditions, networkCondition(subnet), v.metadata.generation ?? 0) });
      // Reserved in the store (a ledger entry written with status.subnet, and the condition), never
      // from the cache.
      const r = await allocator.reserve(ctx, ref, physical, withSubnet);
      if (r.kind === 'gone') return undefined;
      const vc = r.vc;
      const gen = vc.metadata.generation ?? 0;
      const status = vc.status ?? {};
      if (r.kind === 'invalid') {
        await writeStatus(ctx, vc, { ...status, conditions: setCondition(status.conditions, { type: 'NetworkReady', status: 'False', reason: 'InvalidSubnet', message: r.message }, gen) });
        throw new StallingError(r.message, 'InvalidSubnet');
      }
      if (r.kind === 'conflict') {
        await reportConflict(ctx, vc, r);
        return { requeueAfterMs: 10_000 }; // until the holder goes or the spec changes
      }
      if (r.kind === 'exhausted') {
        await writeStatus(ctx, vc, { ...status, conditions: setCondition(status.conditions, { type: 'NetworkReady', status: 'False', reason: 'PoolExhausted', message: `no free /${prefix} left in the pool ${formatCidr(pool)}` }, gen) });
        return { requeueAfterMs: 30_000 };
      }
      const subnet = r.subnet;
      if (r.allocated) ctx.events.record(vc, 'Normal', 'SubnetAllocated', `allocated ${subnet} from ${formatCidr(pool)}`);
      const cond = networkCondition(subnet);
      const prev = getCondition(status.conditions, 'NetworkReady');
      const at = `${ref.namespace ?? ''}/${ref.name}`;
      const same = vc.status?.subnet === subnet && prev?.status === cond.status && prev?.reason === cond.reason;
      if (!same || prev?.message !== cond.message) {
        const since = performance.now() - (messageWritten.get(at) ?? -Infinity);
        if (same && cond.status === 'False' && since < PENDING_MESSAGE_MS) return { requeueAfterMs: Math.ceil(PENDING_MESSAGE_MS - since) };
        await writeStatus(ctx, vc, withSubnet(vc, subnet));
        messageWritten.set(at, performance.now());
      } else if (cond.status === 'False' && !messageWritten.has(at)) {
        messageWritten.set(at, performance.now()); // written with the reservation (allocator.reserve)
      }
      if (cond.status === 'True') messageWritten.delete(at);
      // Routes pending: woken when a node puts them in place (sources above); the recheck is a safety net.
      return cond.status === 'True' ? undefined : { requeueAfterMs: cache ? ROUTES_PENDING_RECHECK_MS : 2_000 };
    },
  };
}

async function writeStatus(ctx: ReconcileContext, vc: VirtualCluster, status: NonNullable<VirtualCluster['status']>): Promise<void> {
  await ctx.store.updateStatus<VirtualCluster>({ ...vc, status });
}

/** NetworkReady=False/SubnetConflict on the VC; Warning Events on it and on the holder when new. */
async function reportConflict(ctx: ReconcileContext, vc: VirtualCluster, r: Extract<ReserveResult, { kind: 'conflict' }>): Promise<void> {
  const message = describeConflict(r);
  const prev = getCondition(vc.status?.conditions, 'NetworkReady');
  if (prev?.status === 'False' && prev.reason === SUBNET_CONFLICT && prev.message === message) return;
  // The Events first: when two managers race, the one whose condition write loses finds the
  // condition written by the other and returns above, so the Events must not depend on winning
  // the write (a repeated Event is aggregated by the recorder).
  ctx.events.record(vc, 'Warning', SUBNET_CONFLICT, message);
  if (r.holder) {
    const h = r.holder;
    ctx.events.record({ kind: 'VirtualCluster', metadata: { name: h.name, namespace: h.namespace, uid: h.uid } }, 'Warning', SUBNET_CONFLICT,
      `VirtualCluster ${vc.metadata.namespace}/${vc.metadata.name} also asks for ${r.subnet}, which this VC holds: it is kept off the network and told so`);
  }
  ctx.log.warn({ subnet: r.subnet, holder: r.holder && `${r.holder.namespace}/${r.holder.name}` }, 'subnet conflict');
  const status = vc.status ?? {};
  await writeStatus(ctx, vc, { ...status, conditions: setCondition(status.conditions, { type: 'NetworkReady', status: 'False', reason: SUBNET_CONFLICT, message }, vc.metadata.generation ?? 0) });
}

/** Both network controllers, sharing what the host controller applied. */
export function networkControllers(cache: CacheReader, deps: NetworkDeps): ControllerSpec[] {
  const applied = new AppliedNetworks();
  return [networkHostController(cache, deps, applied), networkSubnetController(deps, applied, cache)];
}
