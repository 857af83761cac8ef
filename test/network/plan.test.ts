import assert from 'node:assert/strict';
import { allocateSubnet, formatCidr, nthAddress, overlaps, parseCidr } from '../../reconcilers/network/cidr.js';
import { aggregateRoutes, macAddress, planHostNetwork, tapName, type NfsShare, type VmNetwork } from '../../reconcilers/network/host-plan.js';
import { nfsPseudoPath } from '../../reconcilers/network/addresses.js';
import type { NfsExport } from '../../drivers/nfs/ganesha-config.js';
import { observedNfsShares, physicalAddresses } from '../../reconcilers/network/controller.js';
import type { ObjectRef } from '../../api/store/types.js';
import type { ApiObject } from '../../api/types.js';
import type { CacheReader } from '../../controllers/types.js';

describe('cidr', () => {
  it('parses, rejects host bits and garbage with a helpful message', () => {
    assert.equal(formatCidr(parseCidr('10.10.1.0/24')), '10.10.1.0/24');
    assert.throws(() => parseCidr('10.10.1.5/24'), /has host bits set; did you mean 10\.10\.1\.0\/24\?/);
    assert.throws(() => parseCidr('10.10.1.0'), /not an IPv4 CIDR/);
    assert.throws(() => parseCidr('300.1.1.0/24'), /not an IPv4 address/);
  });
  it('finds overlaps and host addresses', () => {
    assert.equal(overlaps(parseCidr('10.10.0.0/16'), parseCidr('10.10.1.0/24')), true);
    assert.equal(overlaps(parseCidr('10.10.1.0/24'), parseCidr('10.10.2.0/24')), false);
    assert.equal(nthAddress(parseCidr('10.10.1.0/24'), 2), '10.10.1.2');
    assert.throws(() => nthAddress(parseCidr('10.10.1.0/30'), 3), /has no host address number 3/);
  });
  it('allocates the lowest subnet overlapping no VC and not the physical network', () => {
    const pool = parseCidr('10.200.0.0/16');
    const taken = [parseCidr('10.200.0.0/24'), parseCidr('10.200.2.0/23')];
    assert.equal(formatCidr(allocateSubnet(pool, 24, taken)!), '10.200.1.0/24');
    assert.equal(formatCidr(allocateSubnet(pool, 24, [...taken, parseCidr('10.200.1.128/25')])!), '10.200.4.0/24');
    assert.equal(allocateSubnet(parseCidr('10.200.0.0/24'), 24, [parseCidr('10.0.0.0/8')]), undefined);
  });
});

const hosts = [{ name: 'blade1', address: '198.18.0.11' }, { name: 'blade2', address: '198.18.0.12' }];
const vm = (key: string, cluster: string, ip: string, subnet: string, host: string | undefined, incomingHost?: string): VmNetwork =>
    ({ key, cluster, ip, subnet, gateway: subnet.replace(/0\/\d+$/, '1'), host, incomingHost });

describe('planHostNetwork', () => {
  const vms = [
    vm('default.a-0', 'default/a', '10.10.1.2', '10.10.1.0/24', 'blade1'),
    vm('default.a-1', 'default/a', '10.10.1.3', '10.10.1.0/24', 'blade2', 'blade1'),
    vm('default.b-0', 'default/b', '10.10.2.2', '10.10.2.0/24', 'blade2'),
    vm('default.b-1', 'default/b', '10.10.2.3', '10.10.2.0/24', undefined),
  ];

  it('gives local VMs a tap and a host route, remote VMs a route via their host, unplaced ones nothing', () => {
    const s = planHostNetwork('blade1', hosts, vms);
    assert.deepEqual(s.taps.map((t) => t.vm), ['default.a-0', 'default.a-1']);
    assert.deepEqual(s.routes, [
      { dest: '10.10.1.2/32', dev: tapName('default.a-0') },
      { dest: '10.10.1.3/32', via: '198.18.0.12' },
      { dest: '10.10.2.2/32', via: '198.18.0.12' },
    ]);
  });

  it('routes a VC subnet through the node holding most of its VMs (2 or more), its other VMs by /32', () => {
    const three = [{ name: 'blade3', address: '198.18.0.13' }, ...hosts];
    const c = [
      vm('default.c-0', 'default/c', '10.10.3.2', '10.10.3.0/24', 'blade2'),
      vm('default.c-1', 'default/c', '10.10.3.3', '10.10.3.0/24', 'blade2'),
      vm('default.c-2', 'default/c', '10.10.3.4', '10.10.3.0/24', 'blade3'),
      vm('default.d-0', 'default/d', '10.10.4.2', '10.10.4.0/24', 'blade2'), // one VM a node: no aggregate
      vm('default.d-1', 'default/d', '10.10.4.3', '10.10.4.0/24', 'blade3'),
    ];
    assert.deepEqual(planHostNetwork('blade1', three, c).routes, [
      { dest: '10.10.3.4/32', via: '198.18.0.13' },
      { dest: '10.10.4.2/32', via: '198.18.0.12' },
      { dest: '10.10.4.3/32', via: '198.18.0.13' },
      { dest: '10.10.3.0/24', via: '198.18.0.12' },
    ]);
    // on the node it goes through: each VM its own route; on a node holding one of them: its tap and the aggregate
    assert.deepEqual(planHostNetwork('blade2', three, c).routes.map((r) => r.dest), ['10.10.3.2/32', '10.10.3.3/32', '10.10.3.4/32', '10.10.4.2/32', '10.10.4.3/32']);
    assert.deepEqual(planHostNetwork('blade3', three, c).routes, [
      { dest: '10.10.3.4/32', dev: tapName('default.c-2') },
      { dest: '10.10.4.2/32', via: '198.18.0.12' },
      { dest: '10.10.4.3/32', dev: tapName('default.d-1') },
      { dest: '10.10.3.0/24', via: '198.18.0.12' },
    ]);
  });

  it('aggregates no subnet that overlaps another or that two VCs name; a tie goes to the first node by name', () => {
    const addressOf = new Map([...hosts, { name: 'blade3', address: '198.18.0.13' }].map((h) => [h.name, h.address]));
    const pair = (cluster: string, subnet: string, base: string, host: string) =>
      [vm(`${cluster}-0`, cluster, `${base}.2`, subnet, host), vm(`${cluster}-1`, cluster, `${base}.3`, subnet, host)];
    const tie = [...pair('ns/t', '10.10.5.0/24', '10.10.5', 'blade3'), ...pair('ns/t', '10.10.5.0/24', '10.10.5', 'blade2').map((v) => ({ ...v, key: `${v.key}b`, ip: v.ip.replace(/\.(\d)$/, '.1$1') }))];
    assert.deepEqual([...aggregateRoutes(tie, addressOf).values()], [{ host: 'blade2', route: { dest: '10.10.5.0/24', via: '198.18.0.12' } }]);
    const nested = [...pair('ns/big', '10.10.0.0/16', '10.10.6', 'blade2'), ...pair('ns/small', '10.10.7.0/24', '10.10.7', 'blade3'), ...pair('ns/far', '10.20.0.0/24', '10.20.0', 'blade3')];
    assert.deepEqual([...aggregateRoutes(nested, addressOf).keys()], ['ns/far 10.20.0.0/24']);
    const named = [...pair('ns/x', '10.10.8.0/24', '10.10.8', 'blade2'), ...pair('ns/y', '10.10.8.0/24', '10.10.8', 'blade3')];
    assert.equal(aggregateRoutes(named, addressOf).size, 0);
    // a node without a known address carries no aggregate
    assert.equal(aggregateRoutes(pair('ns/z', '10.10.9.0/24', '10.10.9', 'blade9'), addressOf).size, 0);
  });

  it('isolates every VC and pins every tap to its VM address', () => {
    const s = planHostNetwork('blade1', hosts, vms);
    assert.match(s.nftRuleset, /^table inet virtualinux\ndelete table inet virtualinux\n/);
    assert.match(s.nftRuleset, /set vc_subnets \{\n    type ipv4_addr\n    flags interval\n    elements = \{ 10\.10\.1\.0\/24, 10\.10\.2\.0\/24 \}/);
    // Each VC's subnet paired with itself: what one VC may send to (its own subnet).
    assert.match(s.nftRuleset, /set vc_pairs \{\n    type ipv4_addr \. ipv4_addr\n    flags interval\n    elements = \{ 10\.10\.1\.0\/24 \. 10\.10\.1\.0\/24, 10\.10\.2\.0\/24 \. 10\.10\.2\.0\/24 \}/);
    // Both paths: forwarded to another VC's VM, and delivered to another VC's gateway on a tap here;
    // one rule each, however many VCs there are.
    const chain = (hook: string) => new RegExp(`chain ${hook} \\{\n([^}]*)\n  \\}`).exec(s.nftRuleset)?.[1] ?? '';
    for (const hook of ['forward', 'input']) {
      const rules = chain(hook).split('\n').filter((l) => / drop comment "isolate /.test(l));
      assert.deepEqual(rules, [`    ip saddr @vc_subnets ip daddr @vc_subnets ip saddr . ip daddr != @vc_pairs drop comment "isolate ${hook}"`]);
    }
    assert.match(s.nftRuleset, new RegExp(`iifname "${tapName('default.a-0')}" ip saddr != 10\\.10\\.1\\.2 drop`));
    assert.deepEqual(s.nftRuleComments.filter((c) => c.startsWith('isolate')).sort(), ['isolate forward', 'isolate input']);
  });

  it('keeps the anti-spoofing rules in a chain of their own per hook, declared first and jumped to first (hasVm lists only those)', () => {
    const s = planHostNetwork('blade1', hosts, vms);
    const block = (name: string) => new RegExp(`^  chain ${name} \\{\n([^}]*?)^  \\}$`, 'm').exec(s.nftRuleset);
    for (const hook of ['forward', 'input']) {
      const own = block(`antispoof_${hook}`);
      assert.ok(own, `chain antispoof_${hook}`);
      const rules = own[1]!.trim().split('\n');
      // blade1 hosts a-0 and takes a-1 in (a migration): their rules and nothing else (no isolation rule)
      assert.deepEqual(rules.map((l) => /comment "([^"]+)"/.exec(l)?.[1]).sort(), [`antispoof ${hook} default.a-0`, `antispoof ${hook} default.a-1`]);
      assert.match(own[1]!, new RegExp(`iifname "${tapName('default.a-0')}" ip saddr != 10\\.10\\.1\\.2 drop`));
      const base = block(hook);
      assert.ok(base && own.index < base.index, `antispoof_${hook} declared before the ${hook} chain that jumps to it`);
      assert.deepEqual(base[1]!.split('\n').slice(0, 2).map((l) => l.trim()), [`type filter hook ${hook} priority filter; policy accept;`, `jump antispoof_${hook}`]);
      assert.doesNotMatch(base[1]!, /antispoof [a-z]+ default/, 'no tap rule left in the base chain');
    }
  });

  it("gives every tap of a VC, on every node, the VC's gateway MAC (a migrated guest's neighbour entry stays right)", () => {
    const tapOf = (host: string, vmKey: string) => planHostNetwork(host, hosts, vms).taps.find((t) => t.vm === vmKey)!;
    assert.equal(tapOf('blade1', 'default.a-0').gatewayMac, tapOf('blade1', 'default.a-1').gatewayMac);
    assert.equal(tapOf('blade2', 'default.a-1').gatewayMac, tapOf('blade1', 'default.a-1').gatewayMac);
    assert.notEqual(tapOf('blade2', 'default.b-0').gatewayMac, tapOf('blade1', 'default.a-0').gatewayMac);
    assert.match(tapOf('blade2', 'default.b-0').gatewayMac, /^02(:[0-9a-f]{2}){5}$/);
  });

  it('is deterministic in names and output order', () => {
    assert.ok(tapName('default.stripes-0').length <= 15);
    assert.match(macAddress('default.stripes-0'), /^52:54:00(:[0-9a-f]{2}){3}$/);
    assert.deepEqual(planHostNetwork('blade2', hosts, vms), planHostNetwork('blade2', hosts, [...vms].reverse()));
  });
});

describe('planHostNetwork: NFS exports of shared storage', () => {
  const vms = [
    vm('default.a-0', 'default/a', '10.10.1.2', '10.10.1.0/24', 'blade1'),
    vm('default.a-1', 'default/a', '10.10.1.3', '10.10.1.0/24', 'blade1'),
    vm('lab.b-0', 'lab/b', '10.10.2.2', '10.10.2.0/24', 'blade2', 'blade1'),
    vm('lab.c-0', 'lab/c', '10.10.3.2', '10.10.3.0/24', 'blade2'),
    vm('lab.d-0', 'lab/d', '10.10.4.2', '10.10.4.0/24', undefined),
  ];
  const shares: NfsShare[] = [
    { cluster: 'lab/b', path: '/srv/lab/b-shared' },
    { cluster: 'default/a', path: '/srv/default/a-shared' },
    { cluster: 'lab/c', path: undefined },
    { cluster: 'lab/d', path: '/srv/lab/d-shared' },
  ];
  const a = { pseudo: '/vc/default/a', path: '/srv/default/a-shared', clients: '10.10.1.0/24' };
  const b = { pseudo: '/vc/lab/b', path: '/srv/lab/b-shared', clients: '10.10.2.0/24' };
  const cases: { name: string; host: string; vms: VmNetwork[]; shares: NfsShare[]; want: NfsExport[] }[] = [
    { name: 'a VC with VMs placed here (once), and one migrating here', host: 'blade1', vms, shares, want: [a, b] },
    { name: 'the migration source keeps serving until the VM has moved', host: 'blade2', vms, shares, want: [b] },
    { name: 'no export for a VC whose shared volume has no path yet', host: 'blade2', vms, shares: shares.filter((s) => s.cluster === 'lab/c'), want: [] },
    { name: 'no export for a VC without a VM on any node', host: 'blade1', vms: vms.slice(4), shares, want: [] },
    { name: 'no export for VCs without nfs shared storage (9p, none, ocfs2: not in shares)', host: 'blade1', vms, shares: [], want: [] },
    { name: 'no export on a node hosting none of its VMs', host: 'blade3', vms, shares, want: [] },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(planHostNetwork(c.host, hosts, c.vms, c.shares).nfsExports, c.want));
  }

  it('the pseudo path is /vc/<namespace>/<vc>', () => assert.equal(nfsPseudoPath('default/a'), '/vc/default/a'));

  it('lets only taps reach NFS with a VC source address, and keeps the anti-spoofing rules', () => {
    const s = planHostNetwork('blade1', hosts, vms, shares);
    // the input path: its base chain, which jumps to the taps' anti-spoofing rules first
    const input = s.nftRuleset.slice(s.nftRuleset.indexOf('chain input'));
    const antispoof = /chain antispoof_input \{\n([^}]*)\}/.exec(s.nftRuleset)?.[1] ?? '';
    assert.match(input, /policy accept;\n    jump antispoof_input\n/);
    assert.match(input, /tcp dport 2049 ip saddr @vc_subnets iifname != "vt\*" drop comment "nfs only from taps"/);
    assert.match(antispoof, new RegExp(`iifname "${tapName('default.a-0')}" ip saddr != 10\\.10\\.1\\.2 drop`));
    assert.ok(antispoof.split('\n').filter((l) => l.includes(' drop')).every((l) => /comment "antispoof input /.test(l)));
    const drops = input.split('\n').filter((l) => l.includes(' drop'));
    // Isolation drops only what one VC sends to another's subnet: never to its own gateway.
    const otherVcOnly = (l: string) => l === '    ip saddr @vc_subnets ip daddr @vc_subnets ip saddr . ip daddr != @vc_pairs drop comment "isolate input"';
    assert.ok(drops.every((l) => /comment "(antispoof input |nfs only from taps)/.test(l) || otherVcOnly(l)), 'nothing else stands between a VM and its gateway on 2049');
    assert.equal(drops.filter(otherVcOnly).length, 1, 'one isolation rule for the four VCs (a, b, c, d)');
    assert.match(s.nftRuleset, /elements = \{ (\S+ \. \S+(, )?){4} \}/, 'their four subnets, each paired with itself');
    assert.match(input, /policy accept;/);
    assert.ok(s.nftRuleComments.includes('nfs only from taps'));
  });
});

describe('observedNfsShares', () => {
  const objects: ApiObject[] = [];
  const cache: CacheReader = {
    get: <T extends ApiObject>(ref: ObjectRef) => objects.find((o) => o.kind === ref.kind && o.metadata.name === ref.name && o.metadata.namespace === ref.namespace) as T | undefined,
    list: <T extends ApiObject>(kind: string) => objects.filter((o) => o.kind === kind) as T[],
  };
  const vc = (name: string, filesystem?: 'nfs' | 'ocfs2' | 'none') =>
    ({ kind: 'VirtualCluster', metadata: { name, namespace: 'lab' }, spec: filesystem ? { sharedStorage: { sizeGiB: 1, filesystem } } : {} }) as unknown as ApiObject;
  const vol = (name: string, cluster: string, path?: string) =>
    ({ kind: 'Volume', metadata: { name, namespace: 'lab' }, spec: { role: 'shared', cluster, sizeGiB: 1, driver: 'qcow2' }, status: path ? { path } : {} }) as unknown as ApiObject;
  objects.push(
    vc('n', 'nfs'), vol('n-shared', 'n', '/srv/lab/n-shared'),
    vc('p', 'nfs'), vol('p-shared', 'p'),
    vc('o', 'ocfs2'), vol('o-shared', 'o', '/srv/lab/o-shared'),
    vc('z', 'none'), vc('plain'),
  );

  it('lists nfs VCs only, with the path of their shared volume once it has one', () => {
    assert.deepEqual(observedNfsShares(cache), [
      { cluster: 'lab/n', path: '/srv/lab/n-shared' },
      { cluster: 'lab/p', path: undefined },
    ]);
  });
});

describe('physicalAddresses', () => {
  it('parses every PhysicalNode address and skips host names', () => {
    const pn = (name: string, address: string) => ({ kind: 'PhysicalNode', metadata: { name }, spec: { address } }) as unknown as ApiObject;
    const nodes = [pn('a', '198.18.0.1'), pn('b', 'blade2.example'), pn('c', '10.0.0.255')];
    const cache: CacheReader = { get: () => undefined, list: <T extends ApiObject>() => nodes as T[] };
    assert.deepEqual(physicalAddresses(cache), [
      { node: 'a', ip: (198 * 2 ** 24) + (18 << 16) + 1 },
      { node: 'c', ip: (10 * 2 ** 24) + 255 },
    ]);
  });
});
