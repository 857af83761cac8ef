// The desired network state of one physical node, as a pure function of where every VM is.
// The paper's routed networking (section 4.1): each physical node is the router of the VMs it
// hosts — a tap per VM with a host route to the VM through it, proxy ARP on the tap, and the VC
// gateway address on the tap so the guest's next hop answers; a route to every VM hosted
// elsewhere through that host's address; no bridge shared between VCs. Isolation: an nftables
// table of our own drops traffic between different VCs' subnets, forwarded or addressed to this
// node (another VC's gateway address on its taps here), and any packet a VM sends with a source
// address that is not its own. The table is replaced atomically.
// Shared storage over NFS: a node that hosts a VM of a VC whose shared storage is nfs (or is the
// target of its migration) serves the VC's shared directory at /vc/<namespace>/<vc> to the VC's
// subnet; the guests mount it from their gateway address, which every tap of the VC carries, so
// the same address serves them after a live migration.

import { createHash } from 'node:crypto';
import { NFS_PORT, type NfsExport } from '../../drivers/nfs/ganesha-config.js';
import { NFT_TABLE, tapName, type HostNetworkState, type RouteSpec, type TapSpec } from '../../drivers/network/types.js';
import { nfsPseudoPath } from './addresses.js';

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

export function planHostNetwork(hostName: string, hosts: readonly HostAddress[], vms: readonly VmNetwork[], shares: readonly NfsShare[] = []): HostNetworkState {
  const addressOf = new Map(hosts.map((h) => [h.name, h.address]));
  const sorted = [...vms].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const taps: TapSpec[] = [];
  const routes: RouteSpec[] = [];
  for (const vm of sorted) {
    const local = vm.host === hostName;
    if (local || vm.incomingHost === hostName) {
      taps.push({ name: tapName(vm.key), vm: vm.key, mac: macAddress(vm.key), gateway: vm.gateway, gatewayMac: gatewayMacAddress(vm.cluster), ip: vm.ip });
    }
    if (local) routes.push({ dest: `${vm.ip}/32`, dev: tapName(vm.key) });
    else if (vm.host !== undefined && addressOf.has(vm.host)) routes.push({ dest: `${vm.ip}/32`, via: addressOf.get(vm.host)! });
  }
  const { text, comments } = renderRuleset(sorted, taps);
  return { taps, routes, nftRuleset: text, nftRuleComments: comments, nfsExports: planNfsExports(hostName, sorted, shares) };
}

function planNfsExports(hostName: string, vms: readonly VmNetwork[], shares: readonly NfsShare[]): NfsExport[] {
  const out: NfsExport[] = [];
  for (const share of [...shares].sort((a, b) => (a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0))) {
    if (share.path === undefined) continue;
    const here = vms.find((vm) => vm.cluster === share.cluster && (vm.host === hostName || vm.incomingHost === hostName));
    if (here) out.push({ pseudo: nfsPseudoPath(share.cluster), path: share.path, clients: here.subnet });
  }
  return out;
}

function renderRuleset(vms: readonly VmNetwork[], taps: readonly TapSpec[]): { text: string; comments: string[] } {
  const subnets = new Map<string, string>();
  for (const vm of vms) subnets.set(vm.cluster, vm.subnet);
  const clusters = [...subnets.keys()].sort();
  const comments: string[] = [];
  const lines: string[] = [];
  lines.push(`table inet ${NFT_TABLE}`, `delete table inet ${NFT_TABLE}`, `table inet ${NFT_TABLE} {`);
  const elements = [...new Set(subnets.values())].sort();
  lines.push('  set vc_subnets {', '    type ipv4_addr', '    flags interval');
  if (elements.length > 0) lines.push(`    elements = { ${elements.join(', ')} }`);
  lines.push('  }');
  for (const hook of ['forward', 'input'] as const) {
    lines.push(`  chain ${hook} {`, `    type filter hook ${hook} priority filter; policy accept;`);
    for (const t of taps) {
      const c = `antispoof ${hook} ${t.vm}`;
      comments.push(c);
      lines.push(`    iifname "${t.name}" ip saddr != ${t.ip} drop comment "${c}"`);
    }
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
    for (const cl of clusters) {
      const s = subnets.get(cl)!;
      const c = `isolate ${hook} ${cl}`;
      comments.push(c);
      lines.push(`    ip saddr ${s} ip daddr @vc_subnets ip daddr != ${s} drop comment "${c}"`);
    }
    lines.push('  }');
  }
  lines.push('}', '');
  return { text: lines.join('\n'), comments };
}
