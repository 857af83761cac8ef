import assert from 'node:assert/strict';
import { allocateSubnet, formatCidr, nthAddress, overlaps, parseCidr } from '../../reconcilers/network/cidr.js';
import { macAddress, planHostNetwork, tapName, type VmNetwork } from '../../reconcilers/network/host-plan.js';

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

describe('planHostNetwork', () => {
  const hosts = [{ name: 'blade1', address: '198.18.0.11' }, { name: 'blade2', address: '198.18.0.12' }];
  const vm = (key: string, cluster: string, ip: string, subnet: string, host: string | undefined, incomingHost?: string): VmNetwork =>
    ({ key, cluster, ip, subnet, gateway: subnet.replace(/0\/\d+$/, '1'), host, incomingHost });
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

  it('isolates every VC and pins every tap to its VM address', () => {
    const s = planHostNetwork('blade1', hosts, vms);
    assert.match(s.nftRuleset, /^table inet virtualinux\ndelete table inet virtualinux\n/);
    assert.match(s.nftRuleset, /elements = \{ 10\.10\.1\.0\/24, 10\.10\.2\.0\/24 \}/);
    assert.match(s.nftRuleset, /ip saddr 10\.10\.1\.0\/24 ip daddr @vc_subnets ip daddr != 10\.10\.1\.0\/24 drop comment "isolate default\/a"/);
    assert.match(s.nftRuleset, new RegExp(`iifname "${tapName('default.a-0')}" ip saddr != 10\\.10\\.1\\.2 drop`));
    assert.deepEqual(s.nftRuleComments.filter((c) => c.startsWith('isolate')), ['isolate default/a', 'isolate default/b']);
  });

  it('is deterministic in names and output order', () => {
    assert.ok(tapName('default.stripes-0').length <= 15);
    assert.match(macAddress('default.stripes-0'), /^52:54:00(:[0-9a-f]{2}){3}$/);
    assert.deepEqual(planHostNetwork('blade2', hosts, vms), planHostNetwork('blade2', hosts, [...vms].reverse()));
  });
});
