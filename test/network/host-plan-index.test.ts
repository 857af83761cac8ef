// The node plan from the shared index (indexHostPlans + planHostFromIndex, what network/hosts
// uses) is the plan of the per-node pass over every VM it replaced: the old implementation is kept
// below, verbatim, as the oracle, and both are compared on every node of random worlds (VMs on
// nodes without a known address, unplaced VMs, incoming migrations, a VC whose VMs disagree on
// its subnet, NFS shares with and without a path, twice for one VC).

import assert from 'node:assert/strict';
import { NFS_PORT, type NfsExport } from '../../drivers/nfs/ganesha-config.js';
import { NFT_TABLE, type HostNetworkState, type RouteSpec, type TapSpec } from '../../drivers/network/types.js';
import { nfsPseudoPath } from '../../reconcilers/network/addresses.js';
import { makeRandom } from '../../hack/bench/placement-workload.js';
import {
  aggregateRoutes, gatewayMacAddress, indexHostPlans, macAddress, planHostFromIndex, planHostNetwork, tapName,
  type HostAddress, type NfsShare, type VmNetwork,
} from '../../reconcilers/network/host-plan.js';

// ---- the oracle: reconcilers/network/host-plan.ts as of 1a1bf4a (a pass over every VM per node),
// its isolation rules as of session 16 (one rule per hook over the vc_pairs set, not one per VC) ----
function oraclePlan(hostName: string, hosts: readonly HostAddress[], vms: readonly VmNetwork[], shares: readonly NfsShare[] = []): HostNetworkState {
  const addressOf = new Map(hosts.map((h) => [h.name, h.address]));
  const sorted = [...vms].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const taps: TapSpec[] = [];
  const routes: RouteSpec[] = [];
  // (since session 16: a VC subnet's aggregate route, aggregateRoutes, covers its VMs on the node it goes through)
  const aggregates = aggregateRoutes(sorted, addressOf);
  for (const vm of sorted) {
    const local = vm.host === hostName;
    if (local || vm.incomingHost === hostName) {
      taps.push({ name: tapName(vm.key), vm: vm.key, mac: macAddress(vm.key), gateway: vm.gateway, gatewayMac: gatewayMacAddress(vm.cluster), ip: vm.ip });
    }
    if (local) routes.push({ dest: `${vm.ip}/32`, dev: tapName(vm.key) });
    else if (vm.host !== undefined && addressOf.has(vm.host) && aggregates.get(`${vm.cluster} ${vm.subnet}`)?.host !== vm.host) routes.push({ dest: `${vm.ip}/32`, via: addressOf.get(vm.host)! });
  }
  for (const a of aggregates.values()) if (a.host !== hostName) routes.push(a.route);
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
  lines.push('  set vc_pairs {', '    type ipv4_addr . ipv4_addr', '    flags interval');
  if (elements.length > 0) lines.push(`    elements = { ${elements.map((e) => `${e} . ${e}`).join(', ')} }`);
  lines.push('  }');
  for (const hook of ['forward', 'input'] as const) {
    lines.push(`  chain antispoof_${hook} {`);
    for (const t of taps) {
      const c = `antispoof ${hook} ${t.vm}`;
      comments.push(c);
      lines.push(`    iifname "${t.name}" ip saddr != ${t.ip} drop comment "${c}"`);
    }
    lines.push('  }');
  }
  for (const hook of ['forward', 'input'] as const) {
    lines.push(`  chain ${hook} {`, `    type filter hook ${hook} priority filter; policy accept;`, `    jump antispoof_${hook}`);
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
    if (clusters.length > 0) {
      const c = `isolate ${hook}`;
      comments.push(c);
      lines.push(`    ip saddr @vc_subnets ip daddr @vc_subnets ip saddr . ip daddr != @vc_pairs drop comment "${c}"`);
    }
    lines.push('  }');
  }
  lines.push('}', '');
  return { text: lines.join('\n'), comments };
}
// ---- end of the oracle ----

function world(seed: number): { hosts: HostAddress[]; vms: VmNetwork[]; shares: NfsShare[]; nodes: string[] } {
  const r = makeRandom(seed); // a failure replays by its seed
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const nodes = Array.from({ length: 2 + Math.floor(r() * 6) }, (_, i) => `n${i}`);
  // Some nodes have no known address (a host name, or not listed).
  const hosts = nodes.filter(() => r() < 0.8).map((name, i) => ({ name, address: `198.18.1.${i + 1}` }));
  const clusters = Array.from({ length: 1 + Math.floor(r() * 6) }, (_, i) => `ns${i % 2}/vc${i}`);
  const vms: VmNetwork[] = [];
  const count = Math.floor(r() * 40);
  for (let i = 0; i < count; i++) {
    const c = clusters.indexOf(pick(clusters));
    // One VM in twenty says another subnet for its VC (the plan takes the last in key order).
    const subnet = r() < 0.05 ? `10.99.${c}.0/24` : `10.10.${c}.0/24`;
    const host = r() < 0.15 ? undefined : pick([...nodes, 'elsewhere']);
    const incomingHost = r() < 0.2 ? pick(nodes) : undefined;
    vms.push({ key: `${clusters[c]!.split('/')[0]}.vm${Math.floor(r() * 1000)}-${i}`, cluster: clusters[c]!, ip: `10.10.${c}.${2 + i}`, subnet, gateway: `10.10.${c}.1`, host, incomingHost });
  }
  const shares: NfsShare[] = clusters.filter(() => r() < 0.6).map((cluster) => ({ cluster, path: r() < 0.8 ? `/srv/${cluster}` : undefined }));
  if (shares.length > 0 && r() < 0.3) shares.push({ ...shares[0]!, path: '/srv/again' });
  return { hosts, vms: vms.sort(() => r() - 0.5), shares: shares.reverse(), nodes: [...nodes, 'elsewhere', 'absent'] };
}

describe('network host plan from the shared index', () => {
  it('equals the per-node pass over every VM on every node of 300 random worlds', () => {
    let compared = 0;
    let withTaps = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const w = world(seed);
      const index = indexHostPlans(w.hosts, w.vms, w.shares);
      for (const node of w.nodes) {
        const want = oraclePlan(node, w.hosts, w.vms, w.shares);
        assert.deepEqual(planHostFromIndex(node, index), want, `seed ${seed}, node ${node}`);
        assert.deepEqual(planHostNetwork(node, w.hosts, w.vms, w.shares), want, `seed ${seed}, node ${node} (planHostNetwork)`);
        compared++;
        if (want.taps.length > 0) withTaps++;
      }
    }
    // The worlds exercise what they should: most nodes have taps, some have none.
    assert.ok(withTaps > compared / 3 && withTaps < compared, `${withTaps} of ${compared} plans with taps`);
  });

  it('a node plan from the index leaves the index as it was (plans of other nodes share it)', () => {
    const w = world(7);
    const index = indexHostPlans(w.hosts, w.vms, w.shares);
    const before = JSON.stringify({ ...index, routeAt: [...index.routeAt], routesBefore: [...index.routesBefore], byHost: [...index.byHost], sharesOf: [...index.sharesOf] });
    for (const node of w.nodes) planHostFromIndex(node, index).routes.push({ dest: '1.2.3.4/32', dev: 'x' });
    assert.equal(JSON.stringify({ ...index, routeAt: [...index.routeAt], routesBefore: [...index.routesBefore], byHost: [...index.byHost], sharesOf: [...index.sharesOf] }), before);
  });
});
