// The desired network state of one physical node, as a pure function of where every VM is.
// The paper's routed networking (section 4.1): each physical node is the router of the VMs it
// hosts — a tap per VM with a host route to the VM through it, proxy ARP on the tap, and the VC
// gateway address on the tap so the guest's next hop answers; a route to every VM hosted
// elsewhere through that host's address (one route to a VC's whole subnet through the node holding
// most of its VMs, and a /32 for each of its VMs elsewhere: aggregateRoutes); no bridge shared
// between VCs. Isolation: an nftables
// table of our own drops traffic between different VCs' subnets, forwarded or addressed to this
// node (another VC's gateway address on its taps here), and any packet a VM sends with a source
// address that is not its own: one rule per hook over two sets (every VC's subnet, and each paired
// with itself), not a rule per VC. The table is replaced atomically.
// Shared storage over NFS: a node that hosts a VM of a VC whose shared storage is nfs (or is the
// target of its migration) serves the VC's shared directory at /vc/<namespace>/<vc> to the VC's
// subnet; the guests mount it from their gateway address, which every tap of the VC carries, so
// the same address serves them after a live migration.

import { createHash } from 'node:crypto';
import { NFS_PORT, type NfsExport } from '../../drivers/nfs/ganesha-config.js';
import { NFT_TABLE, antispoofChain, tapName, type HostNetworkState, type RouteSpec, type TapSpec } from '../../drivers/network/types.js';
import { nfsPseudoPath } from './addresses.js';
import { formatCidr, parseSubnet, size, type Cidr } from './cidr.js';

// The driver's input types, re-exported for the plan's users (the runtime names taps too).
export { tapName, type HostNetworkState, type RouteSpec, type TapSpec };

export interface VmNetwork {
  /** `<namespace>.<virtualnode>`: the domain name. */
  key: string;
  /** `<namespace>/<vc>`. */
  cluster: string;
  ip: string;
  subnet: string;
  gateway: string;
  /** The node whose tap carries the VM's traffic now (where it runs, or where it will start). */
  host: string | undefined;
  /** A node the VM is being live-migrated to: its tap must exist before the switch-over. */
  incomingHost?: string;
}

/** A VC whose shared storage is served over NFS. */
export interface NfsShare {
  /** `<namespace>/<vc>`, as VmNetwork.cluster. */
  cluster: string;
  /** The shared Volume's directory (status.path); undefined while it is not provisioned. */
  path: string | undefined;
}

export interface HostAddress {
  name: string;
  address: string;
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A deterministic locally administered MAC in QEMU's 52:54:00 range. */
export function macAddress(vmKey: string): string {
  const h = digest(`mac:${vmKey}`);
  return `52:54:00:${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}`;
}

/**
 * The MAC the VC's gateway address answers from, on every tap of the VC on every node: after a
 * live migration the guest's neighbour entry for its gateway stays right, so its traffic (its
 * NFS connection among it) reaches the new node at once instead of being dropped as addressed to
 * another host until the entry goes stale (tens of seconds). Locally administered, unicast.
 */
export function gatewayMacAddress(cluster: string): string {
  const h = digest(`gateway-mac:${cluster}`);
  return `02:${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}:${h.slice(6, 8)}:${h.slice(8, 10)}`;
}

/** The comment of a hook's isolation rule (one rule per hook: drops from one VC subnet to another). */
export function isolationComment(hook: 'forward' | 'input'): string {
  return `isolate ${hook}`;
}

export function planHostNetwork(hostName: string, hosts: readonly HostAddress[], vms: readonly VmNetwork[], shares: readonly NfsShare[] = []): HostNetworkState {
  return planHostFromIndex(hostName, indexHostPlans(hosts, vms, shares));
}

/**
 * What every node's plan shares, computed once for one set of VMs, hosts and shares (the network
 * hosts controller keeps it while they are unchanged): the VMs in key order, the route to each
 * through its host, the isolation rules of every VC, and each node's own VMs (local or incoming)
 * and shares. A node's plan (planHostFromIndex) then costs its own VMs and VCs plus copying the
 * shared parts; it was a pass over every VM per node (~11 s per node plan at 10,000 VMs under
 * load: hack/bench-scale). planHostNetwork(...) === planHostFromIndex(host, indexHostPlans(...)).
 */
export interface HostPlanIndex {
  /** Every VM, in key order. */
  readonly sorted: readonly VmNetwork[];
  /** The /32 route to each VM hosted on a node with a known address, in key order, but for the VMs an aggregate covers... */
  readonly remoteRoutes: readonly RouteSpec[];
  /** ...the position in remoteRoutes of sorted[i] (-1: none), and how many of them come before sorted[i]. */
  readonly routeAt: Int32Array;
  readonly routesBefore: Int32Array;
  /** Per VC subnet with 2 or more VMs on one node: one route to the subnet via the node holding most of them (their /32 routes left out), by destination. */
  readonly aggregates: readonly { host: string; route: RouteSpec }[];
  /** Per node: the positions in `sorted` of the VMs it hosts or receives, ascending. */
  readonly byHost: ReadonlyMap<string, readonly number[]>;
  /** The ruleset's `elements = {...}` line of vc_subnets, or undefined without VCs. */
  readonly elements: string | undefined;
  /** The `elements = {...}` line of vc_pairs (each VC's subnet paired with itself), or undefined without VCs. */
  readonly pairs: string | undefined;
  /** Per hook: the isolation rule (undefined without VCs; its comments). */
  readonly isolate: Readonly<Record<'forward' | 'input', { text: string | undefined; comments: readonly string[] }>>;
  /** The shares by cluster, in their given order. */
  readonly sharesOf: ReadonlyMap<string, readonly NfsShare[]>;
}

/**
 * The aggregate routes: for each VC subnet (a VM's `cluster` and `subnet`) that overlaps no other
 * subnet, the node with a known address holding most of its VMs (2 or more; on a tie the first by
 * name) and the route to the whole subnet through it. Every other node reaches those VMs through
 * that one route instead of a /32 each; a VM of the VC elsewhere keeps its /32 (longest prefix
 * wins), and so does each node's own VM (its tap). With Block placement a VC's VMs mostly share a
 * node: at 10,000 VMs of 2,500 VCs, ~2,500 routes a node instead of 10,000 (hack/bench-scale).
 * Returned by "cluster subnet", sorted by destination.
 */
export function aggregateRoutes(vms: readonly VmNetwork[], addressOf: ReadonlyMap<string, string>): Map<string, { host: string; route: RouteSpec }> {
  const groups = new Map<string, { dest: string; counts: Map<string, number> }>();
  const distinct = new Map<string, Cidr | undefined>();
  for (const vm of vms) {
    if (!distinct.has(vm.subnet)) distinct.set(vm.subnet, tryParseSubnet(vm.subnet));
    const subnet = distinct.get(vm.subnet);
    if (vm.host === undefined || !addressOf.has(vm.host) || !subnet) continue;
    const key = `${vm.cluster} ${vm.subnet}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { dest: formatCidr(subnet), counts: new Map() }));
    g.counts.set(vm.host, (g.counts.get(vm.host) ?? 0) + 1);
  }
  // A subnet that overlaps another (two VCs' subnets overlapping, or one VC's VMs on two subnets
  // that overlap) gets no aggregate: it would carry the other's traffic.
  const spans = [...distinct.values()].filter((c): c is Cidr => c !== undefined)
    .map((c) => ({ c, end: c.base + size(c) })).sort((a, b) => a.c.base - b.c.base || b.end - a.end);
  const overlapping = new Set<string>();
  let reach = -1;
  let last: Cidr | undefined;
  for (const { c, end } of spans) {
    if (c.base < reach) {
      overlapping.add(formatCidr(c));
      if (last) overlapping.add(formatCidr(last));
    }
    if (end > reach) { reach = end; last = c; }
  }
  // ...and so does a subnet two VCs name (only a VC in SubnetConflict would, and its VMs have no network).
  const clustersOf = new Map<string, Set<string>>();
  for (const [key, g] of groups) {
    const set = clustersOf.get(g.dest) ?? new Set<string>();
    set.add(key.slice(0, key.indexOf(' ')));
    clustersOf.set(g.dest, set);
  }
  const out: { key: string; host: string; route: RouteSpec }[] = [];
  for (const [key, g] of groups) {
    const { dest } = g;
    if (overlapping.has(dest) || clustersOf.get(dest)!.size > 1) continue;
    let host: string | undefined;
    let most = 1;
    for (const [h, n] of g.counts) if (n > most || (n === most && host !== undefined && h < host)) { host = h; most = n; }
    if (host !== undefined) out.push({ key, host, route: { dest, via: addressOf.get(host)! } });
  }
  out.sort((a, b) => (a.route.dest < b.route.dest ? -1 : a.route.dest > b.route.dest ? 1 : 0));
  return new Map(out.map((a) => [a.key, { host: a.host, route: a.route }]));
}

function tryParseSubnet(text: string): Cidr | undefined {
  try {
    return parseSubnet(text);
  } catch {
    return undefined;
  }
}

export function indexHostPlans(hosts: readonly HostAddress[], vms: readonly VmNetwork[], shares: readonly NfsShare[] = []): HostPlanIndex {
  const addressOf = new Map(hosts.map((h) => [h.name, h.address]));
  const sorted = [...vms].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const aggregated = aggregateRoutes(sorted, addressOf);
  const remoteRoutes: RouteSpec[] = [];
  const routeAt = new Int32Array(sorted.length).fill(-1);
  const routesBefore = new Int32Array(sorted.length);
  const byHost = new Map<string, number[]>();
  const add = (host: string, i: number) => {
    const list = byHost.get(host);
    if (list) list.push(i);
    else byHost.set(host, [i]);
  };
  const subnets = new Map<string, string>();
  sorted.forEach((vm, i) => {
    routesBefore[i] = remoteRoutes.length;
    if (vm.host !== undefined) {
      add(vm.host, i);
      const via = addressOf.get(vm.host);
      if (via !== undefined && aggregated.get(`${vm.cluster} ${vm.subnet}`)?.host !== vm.host) {
        routeAt[i] = remoteRoutes.length;
        remoteRoutes.push({ dest: `${vm.ip}/32`, via });
      }
    }
    if (vm.incomingHost !== undefined && vm.incomingHost !== vm.host) add(vm.incomingHost, i);
    subnets.set(vm.cluster, vm.subnet);
  });
  const elements = [...new Set(subnets.values())].sort();
  // One rule per hook, whatever the number of VCs: from a VC subnet to a VC subnet that is not the
  // same one. It was one rule per VC (2,500 VCs: 5,000 rules a node, in every node's table and
  // every packet's path: hack/bench-scale); the pairs are a set, looked up at once.
  const isolate = (hook: 'forward' | 'input') => ({
    text: elements.length === 0 ? undefined
      : `    ip saddr @vc_subnets ip daddr @vc_subnets ip saddr . ip daddr != @vc_pairs drop comment "${isolationComment(hook)}"`,
    comments: elements.length === 0 ? [] : [isolationComment(hook)],
  });
  const sharesOf = new Map<string, NfsShare[]>();
  for (const share of shares) {
    const list = sharesOf.get(share.cluster);
    if (list) list.push(share);
    else sharesOf.set(share.cluster, [share]);
  }
  return {
    sorted, remoteRoutes, routeAt, routesBefore, byHost, sharesOf, aggregates: [...aggregated.values()],
    elements: elements.length > 0 ? `    elements = { ${elements.join(', ')} }` : undefined,
    pairs: elements.length > 0 ? `    elements = { ${elements.map((e) => `${e} . ${e}`).join(', ')} }` : undefined,
    isolate: { forward: isolate('forward'), input: isolate('input') },
  };
}

/** One node's plan from the shared index: its own VMs' taps, routes and rules, the rest copied. */
export function planHostFromIndex(hostName: string, index: HostPlanIndex): HostNetworkState {
  const mine = index.byHost.get(hostName) ?? [];
  const taps: TapSpec[] = [];
  let routes = [...index.remoteRoutes];
  // A local VM without a remote route (an aggregate covers it, or its node has no known address):
  // placed in key order.
  const inserted: { at: number; route: RouteSpec }[] = [];
  for (const i of mine) {
    const vm = index.sorted[i]!;
    taps.push({ name: tapName(vm.key), vm: vm.key, mac: macAddress(vm.key), gateway: vm.gateway, gatewayMac: gatewayMacAddress(vm.cluster), ip: vm.ip });
    if (vm.host !== hostName) continue;
    const route = { dest: `${vm.ip}/32`, dev: tapName(vm.key) };
    const at = index.routeAt[i]!;
    if (at >= 0) routes[at] = route;
    else inserted.push({ at: index.routesBefore[i]!, route });
  }
  if (inserted.length > 0) {
    // `mine` ascends, so `inserted` does: one merge.
    const merged: RouteSpec[] = [];
    let k = 0;
    for (let j = 0; j <= routes.length; j++) {
      while (k < inserted.length && inserted[k]!.at === j) merged.push(inserted[k++]!.route);
      if (j < routes.length) merged.push(routes[j]!);
    }
    routes = merged;
  }
  for (const a of index.aggregates) if (a.host !== hostName) routes.push(a.route);
  const { text, comments } = renderRuleset(index, taps);
  return { taps, routes, nftRuleset: text, nftRuleComments: comments, nfsExports: planNfsExports(index, mine) };
}

function planNfsExports(index: HostPlanIndex, mine: readonly number[]): NfsExport[] {
  // The first VM (in key order) of each VC here gives the export's client subnet.
  const subnetOf = new Map<string, string>();
  for (const i of mine) {
    const vm = index.sorted[i]!;
    if (!subnetOf.has(vm.cluster)) subnetOf.set(vm.cluster, vm.subnet);
  }
  const out: NfsExport[] = [];
  for (const cluster of [...subnetOf.keys()].sort()) {
    for (const share of index.sharesOf.get(cluster) ?? []) {
      if (share.path !== undefined) out.push({ pseudo: nfsPseudoPath(share.cluster), path: share.path, clients: subnetOf.get(cluster)! });
    }
  }
  return out;
}

function renderRuleset(index: HostPlanIndex, taps: readonly TapSpec[]): { text: string; comments: string[] } {
  const comments: string[] = [];
  const lines: string[] = [];
  lines.push(`table inet ${NFT_TABLE}`, `delete table inet ${NFT_TABLE}`, `table inet ${NFT_TABLE} {`);
  lines.push('  set vc_subnets {', '    type ipv4_addr', '    flags interval');
  if (index.elements !== undefined) lines.push(index.elements);
  lines.push('  }');
  lines.push('  set vc_pairs {', '    type ipv4_addr . ipv4_addr', '    flags interval');
  if (index.pairs !== undefined) lines.push(index.pairs);
  lines.push('  }');
  // Each tap's anti-spoofing rules in a chain of their own per hook (declared before the jump to
  // it), so that a VM's are read without every VC's isolation rules (antispoofChain).
  for (const hook of ['forward', 'input'] as const) {
    lines.push(`  chain ${antispoofChain(hook)} {`);
    for (const t of taps) {
      const c = `antispoof ${hook} ${t.vm}`;
      comments.push(c);
      lines.push(`    iifname "${t.name}" ip saddr != ${t.ip} drop comment "${c}"`);
    }
    lines.push('  }');
  }
  for (const hook of ['forward', 'input'] as const) {
    lines.push(`  chain ${hook} {`, `    type filter hook ${hook} priority filter; policy accept;`, `    jump ${antispoofChain(hook)}`);
    if (hook === 'input') {
      // NFS trusts client addresses (sec=sys): a VC source address reaching a node's NFS server
      // must come from a tap, where the anti-spoofing rules above pin it to its VM. VMs reach
      // their gateway address on any port (the policy accepts); exports admit one subnet each.
      const c = 'nfs only from taps';
      comments.push(c);
      lines.push(`    tcp dport ${NFS_PORT} ip saddr @vc_subnets iifname != "vt*" drop comment "${c}"`);
    }
    // Between VCs: forwarded to another VC's VM, and delivered here to another VC's gateway
    // address (it sits on that VC's taps on this node, so the input path would answer it). The
    // VC's own gateway (its NFS server among it) and the physical network stay reachable.
    const iso = index.isolate[hook];
    for (const c of iso.comments) comments.push(c);
    if (iso.text !== undefined) lines.push(iso.text);
    lines.push('  }');
  }
  lines.push('}', '');
  return { text: lines.join('\n'), comments };
}
