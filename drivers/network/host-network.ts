// HostNetworkDriver: makes one physical node's routing and isolation equal to a HostNetworkState
// (types.ts; reconcilers/network/host-plan.ts computes it), through the node's Transport with
// argument vectors only.
//
// Contract:
// - apply(state) is idempotent and converges from any starting point: it creates missing taps
//   (persistent, up, proxy ARP on, the VC gateway as a /32 on the tap, the VC's gateway MAC as the
//   tap's address), replaces routes (the taps' settings and the routes in one `ip -batch`), deletes
//   taps and routes of ours that are not wanted any more, and loads the nftables table in one
//   `nft -f` transaction (the table is replaced whole: never half-loaded). Then it reads the table
//   back and fails if any expected rule is missing (the runtime must not start a VM whose rules
//   are not in place: fail closed).
// - Only objects that are ours are touched: taps named `vt…`, routes with protocol RT_PROTO (host
//   routes, and routes to a VC's subnet through the node holding most of its VMs), and the table
//   `inet virtualinux`.
// - hasVm(key) tells whether a VM's tap and anti-spoofing rules are in place on this node now.
// - teardown() removes everything of ours from the node.
// A failure part-way leaves a mixture of old and new routes and taps, which the next apply fixes;
// the nftables table is always either the old or the new one.
// On a Xen dom0 the same state serves domUs: the tap is a placeholder until the domain's vif comes
// up, when XenDriver's vif script (drivers/hypervisor/xen-vif-script.ts) takes its MAC and
// addresses, deletes it and renames the vif to its name; an apply then finds the vif under that
// name and keeps it as it would a tap (same MAC, address, proxy ARP, route). When the domain goes,
// the vif goes with it and the next apply makes the placeholder again if the VM is still wanted.

import { execOk, type Transport } from '../transport/types.js';
import { NFT_TABLE, antispoofChain, tapName, type HostNetworkState, type RouteSpec } from './types.js';

/** The routing protocol number marking our routes (`ip route ... proto 188`). */
export const RT_PROTO = '188';
/** apply() names route changes in `changed` one each while it holds fewer entries than this (taps added come first); the rest are counted in one more entry. */
export const ROUTES_TOLD = 32;
const TAP_PREFIX = 'vt';

interface IpLink { ifname: string; address?: string }
interface IpRoute { dst: string; dev?: string; gateway?: string }
interface NftJson { nftables: { rule?: { comment?: string } }[] }

export class HostNetworkDriver {
  constructor(private readonly t: Transport) {}

  async apply(state: HostNetworkState): Promise<{ changed: string[] }> {
    const changed: string[] = [];
    const links = await this.tapAddresses();
    const wanted = new Set(state.taps.map((t) => t.name));
    for (const tap of state.taps) {
      if (!links.has(tap.name)) {
        await this.addTap(tap.name);
        changed.push(`tap ${tap.name} added for ${tap.vm}`);
      }
    }
    // Forwarding and every tap's proxy ARP in one `sysctl` (was one command per tap, each apply).
    await execOk(this.t, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', ...state.taps.map((tap) => `net.ipv4.conf.${tap.name}.proxy_arp=1`)]);

    // Every tap's address, state and gateway, then every route change, in one `ip -batch -` (one
    // round trip, not three per VM of the node and one per VM of the cluster: hack/bench-scale);
    // a tap is up before a route through it. ip stops at the first line that fails and exits
    // non-zero; what ran before stays, as with one command each, and the next apply finishes the job.
    const batch: string[] = [];
    for (const tap of state.taps) {
      // A tap may change its address while up (IFF_LIVE_ADDR_CHANGE).
      if (links.get(tap.name) !== tap.gatewayMac) batch.push(batchLine('link', 'set', 'dev', tap.name, 'address', tap.gatewayMac));
      batch.push(batchLine('link', 'set', 'dev', tap.name, 'up'));
      batch.push(batchLine('addr', 'replace', `${tap.gateway}/32`, 'dev', tap.name));
    }
    const routes = await this.ourRoutes();
    // Each route's destination as `ip -j route` lists it, computed once.
    const wantedRoutes = new Map<string, RouteSpec>();
    for (const r of state.routes) wantedRoutes.set(r.dest.endsWith('/32') ? r.dest.slice(0, -3) : r.dest, r);
    // The route changes are told one by one up to ROUTES_TOLD, then counted: a node of a
    // 10,000-VM cluster gets thousands at once, each a string nobody reads (hack/bench-scale).
    let untold = 0;
    const tell = (line: string) => (changed.length < ROUTES_TOLD ? changed.push(line) : untold++);
    for (const [dst, r] of wantedRoutes) {
      const have = routes.get(dst);
      if (have && sameRoute(have, r)) continue;
      batch.push(routeLine(r));
      tell(`route ${r.dest} ${r.dev ? `dev ${r.dev}` : `via ${r.via}`}`);
    }
    for (const [dst] of routes) {
      if (!wantedRoutes.has(dst)) {
        batch.push(batchLine('route', 'del', withPrefix(dst), 'proto', RT_PROTO));
        tell(`route ${withPrefix(dst)} removed`);
      }
    }
    if (untold > 0) changed.push(`and ${untold} more route changes`);
    if (batch.length > 0) await execOk(this.t, ['ip', '-batch', '-'], { stdin: `${batch.join('\n')}\n` });
    for (const name of links.keys()) {
      if (!wanted.has(name)) {
        await execOk(this.t, ['ip', 'link', 'del', 'dev', name]);
        changed.push(`tap ${name} removed`);
      }
    }

    const before = await this.ruleComments();
    await execOk(this.t, ['nft', '-f', '-'], { stdin: state.nftRuleset });
    const after = await this.ruleComments();
    const missing = state.nftRuleComments.filter((c) => !after.has(c));
    if (missing.length > 0) {
      throw new Error(`${this.t.host}: nftables table ${NFT_TABLE} lacks rules after loading: ${missing.join('; ')}`);
    }
    if (!sameSet(before, after)) changed.push(`nftables table ${NFT_TABLE} reloaded (${after.size} rules)`);
    return { changed };
  }

  /**
   * A persistent tap. A host whose kernel has tun as a module not loaded yet (a Xen dom0 booted
   * without it) has no /dev/net/tun: the module is loaded once and the add tried again.
   */
  private async addTap(name: string): Promise<void> {
    const argv = ['ip', 'tuntap', 'add', 'dev', name, 'mode', 'tap'];
    const r = await this.t.exec(argv);
    if (r.code === 0) return;
    if (!/No such file or directory|No such device/.test(r.stderr)) throw new Error(`${this.t.host}: ${argv.join(' ')} failed: ${r.stderr.trim()}`);
    await execOk(this.t, ['modprobe', 'tun']);
    await execOk(this.t, argv);
  }

  /**
   * The VM's tap exists and its anti-spoofing rules are loaded on this node: read from the two
   * chains that hold them (antispoofChain), not the whole table, whose isolation rules grow with
   * the VCs of the whole cluster; a table loaded before those chains existed is read whole.
   */
  async hasVm(vmKey: string): Promise<boolean> {
    const taps = await this.ourTaps();
    if (!taps.has(tapName(vmKey))) return false;
    let table: Set<string> | undefined;
    for (const hook of ['forward', 'input'] as const) {
      const r = await this.t.exec(['nft', '-j', 'list', 'chain', 'inet', NFT_TABLE, antispoofChain(hook)]);
      const comments = r.code === 0 ? commentsOf(r.stdout) : (table ??= await this.ruleComments());
      if (!comments.has(`antispoof ${hook} ${vmKey}`)) return false;
    }
    return true;
  }

  async teardown(): Promise<void> {
    for (const [dst] of await this.ourRoutes()) {
      await execOk(this.t, ['ip', 'route', 'del', withPrefix(dst), 'proto', RT_PROTO]);
    }
    for (const name of await this.ourTaps()) await execOk(this.t, ['ip', 'link', 'del', 'dev', name]);
    const r = await this.t.exec(['nft', 'delete', 'table', 'inet', NFT_TABLE]);
    if (r.code !== 0 && !/No such file or directory/.test(r.stderr)) {
      throw new Error(`${this.t.host}: nft delete table failed: ${r.stderr.trim()}`);
    }
  }

  async ourTaps(): Promise<Set<string>> {
    return new Set((await this.tapAddresses()).keys());
  }

  /** Our taps, with their MAC addresses. */
  private async tapAddresses(): Promise<Map<string, string | undefined>> {
    const out = await execOk(this.t, ['ip', '-j', 'link', 'show']);
    const links = JSON.parse(out || '[]') as IpLink[];
    return new Map(links.filter((l) => l.ifname.startsWith(TAP_PREFIX) && /^vt[0-9a-f]{10}$/.test(l.ifname)).map((l) => [l.ifname, l.address]));
  }

  async ourRoutes(): Promise<Map<string, IpRoute>> {
    const out = await execOk(this.t, ['ip', '-j', 'route', 'show', 'proto', RT_PROTO]);
    const routes = JSON.parse(out || '[]') as IpRoute[];
    return new Map(routes.map((r) => [r.dst, r]));
  }

  async ruleComments(): Promise<Set<string>> {
    const r = await this.t.exec(['nft', '-j', 'list', 'table', 'inet', NFT_TABLE]);
    return r.code === 0 ? commentsOf(r.stdout) : new Set();
  }
}

/** The rule comments of an `nft -j list` document. */
function commentsOf(json: string): Set<string> {
  const doc = JSON.parse(json) as NftJson;
  return new Set(doc.nftables.flatMap((e) => (e.rule?.comment ? [e.rule.comment] : [])));
}

/**
 * One line of `ip -batch`: ip splits it at blanks, so every token must be one word of the
 * characters addresses, prefixes and interface names use (anything else is refused, never quoted).
 */
function batchLine(...tokens: string[]): string {
  // One test of the joined line (words of those characters, one blank between two), not one per
  // token: thousands of lines an apply at 10,000 VMs (hack/bench-scale).
  // (as many blanks as between the tokens: a token holding one would be two words)
  const line = tokens.join(' ');
  let blanks = 0;
  for (let i = 0; i < line.length; i++) if (line.charCodeAt(i) === 32) blanks++;
  if (blanks === tokens.length - 1 && BATCH_LINE.test(line)) return line;
  const bad = tokens.find((t) => !BATCH_WORD.test(t));
  throw new Error(`refusing ${JSON.stringify(bad)} in an ip batch: not an address, prefix or interface name`);
}
const BATCH_WORD = /^[A-Za-z0-9.:/_-]+$/;
const BATCH_LINE = /^[A-Za-z0-9.:/_-]+(?: [A-Za-z0-9.:/_-]+)*$/;

/**
 * Each route's `route replace` batch line, made and checked once per RouteSpec: the plans of every
 * node share one object per remote route, and a 10,000-VM cluster's route goes to each of 1,000
 * nodes (batchLine was ~1.5 % of a bench-scale manager's CPU, once per line).
 */
const ROUTE_LINES = new WeakMap<RouteSpec, string>();
function routeLine(r: RouteSpec): string {
  let line = ROUTE_LINES.get(r);
  if (line === undefined) {
    line = r.dev ? batchLine('route', 'replace', r.dest, 'proto', RT_PROTO, 'dev', r.dev) : batchLine('route', 'replace', r.dest, 'proto', RT_PROTO, 'via', r.via!);
    ROUTE_LINES.set(r, line);
  }
  return line;
}

/** A destination as `ip -j route` lists it (a host route without its /32, a subnet with its prefix) as `ip route` takes it. */
function withPrefix(dst: string): string {
  return dst.includes('/') ? dst : `${dst}/32`;
}

function sameRoute(have: IpRoute, want: RouteSpec): boolean {
  return want.dev ? have.dev === want.dev && !have.gateway : have.gateway === want.via;
}

function sameSet(a: Set<string>, b: Set<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}
