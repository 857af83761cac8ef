// The host network driver on real testbed nodes (network namespaces with real sshd), through the
// SSH transport: real `ip`, `sysctl` and `nft` inside the nodes. Nothing is sent to a VC subnet.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testbedDown, testbedUp, type TestbedState } from '../../hack/lib/testbed.js';
import { SshTransport } from '../../drivers/transport/ssh-transport.js';
import { HostNetworkDriver, ROUTES_TOLD, RT_PROTO } from '../../drivers/network/host-network.js';
import { gatewayMacAddress, planHostNetwork, tapName, type VmNetwork } from '../../reconcilers/network/host-plan.js';
import { execOk, type Transport } from '../../drivers/transport/types.js';

describe('HostNetworkDriver on testbed nodes', function () {
  this.timeout(120_000);
  let dir: string;
  let tb: TestbedState | undefined;
  const transports: Transport[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vl-net-'));
    tb = await testbedUp({ nodes: 2, dir });
    for (const n of tb.nodes) {
      transports.push(new SshTransport({ host: n.name, address: n.address, port: n.port, user: 'root', identityFile: tb.identityFile, hostKey: n.hostKey }));
    }
  });
  after(async () => {
    await Promise.all(transports.map((t) => t.close()));
    if (tb) await testbedDown(dir);
    await rm(dir, { recursive: true, force: true });
  });

  const hosts = () => tb!.nodes.map((n) => ({ name: n.name, address: n.address }));
  const vm = (key: string, cluster: string, ip: string, subnet: string, host: string): VmNetwork =>
    ({ key, cluster, ip, subnet, gateway: subnet.replace(/0\/24$/, '1'), host });

  it('converges taps, routes and the isolation table, idempotently, and tears down completely', async () => {
    const [n1, n2] = tb!.nodes;
    const vms = [
      vm('default.a-0', 'default/a', '10.10.1.2', '10.10.1.0/24', n1!.name),
      vm('default.a-1', 'default/a', '10.10.1.3', '10.10.1.0/24', n2!.name),
      vm('default.b-0', 'default/b', '10.10.2.2', '10.10.2.0/24', n1!.name),
    ];
    const d1 = new HostNetworkDriver(transports[0]!);
    const first = await d1.apply(planHostNetwork(n1!.name, hosts(), vms));
    assert.ok(first.changed.length > 0);

    const routes = JSON.parse(await execOk(transports[0]!, ['ip', '-j', 'route', 'show', 'proto', RT_PROTO])) as { dst: string; dev: string; gateway?: string }[];
    const byDst = new Map(routes.map((r) => [r.dst, r]));
    assert.equal(byDst.get('10.10.1.2')?.dev, tapName('default.a-0'));
    assert.equal(byDst.get('10.10.1.3')?.gateway, n2!.address);
    assert.equal(byDst.get('10.10.2.2')?.dev, tapName('default.b-0'));
    assert.equal((await execOk(transports[0]!, ['sysctl', '-n', `net.ipv4.conf.${tapName('default.a-0')}.proxy_arp`])).trim(), '1');
    const addrs = await execOk(transports[0]!, ['ip', '-o', '-4', 'addr', 'show', 'dev', tapName('default.a-0')]);
    assert.match(addrs, /inet 10\.10\.1\.1\/32/);
    const mac = (tap: string) => execOk(transports[0]!, ['cat', `/sys/class/net/${tap}/address`]).then((o) => o.trim());
    assert.equal(await mac(tapName('default.a-0')), gatewayMacAddress('default/a'), "the gateway answers from its VC's MAC");
    assert.equal(await mac(tapName('default.b-0')), gatewayMacAddress('default/b'));
    const table = await execOk(transports[0]!, ['nft', 'list', 'table', 'inet', 'virtualinux']);
    // between VCs: one rule over the set of each VC's subnet paired with itself (the kernel's listing)
    assert.match(table, /ip saddr @vc_subnets ip daddr @vc_subnets ip saddr \. ip daddr != @vc_pairs drop comment "isolate forward"/);
    assert.match(table, /elements = \{ 10\.10\.1\.0\/24 \. 10\.10\.1\.0\/24,\s+10\.10\.2\.0\/24 \. 10\.10\.2\.0\/24 \}/);
    assert.ok(await d1.hasVm('default.a-0'));
    assert.equal(await d1.hasVm('default.a-1'), false, 'a-1 runs on the other node');
    // the taps' anti-spoofing rules are a chain of their own, jumped to from the hook's chain
    // (what hasVm lists): no VC's isolation rule in it
    const own = await execOk(transports[0]!, ['nft', 'list', 'chain', 'inet', 'virtualinux', 'antispoof_forward']);
    assert.match(own, new RegExp(`iifname "${tapName('default.a-0')}" ip saddr != 10\\.10\\.1\\.2 drop`));
    assert.doesNotMatch(own, /isolate|@vc_subnets/);
    assert.match(table, /chain forward \{[^}]*jump antispoof_forward/);

    const again = await d1.apply(planHostNetwork(n1!.name, hosts(), vms));
    assert.deepEqual(again.changed, [], 'a second apply changes nothing');

    // a-1 moves here (migration finished), b-0 goes away: routes and taps follow.
    const moved = [vms[0]!, { ...vms[1]!, host: n1!.name }];
    const third = await d1.apply(planHostNetwork(n1!.name, hosts(), moved));
    assert.ok(third.changed.includes(`tap ${tapName('default.b-0')} removed`));
    assert.ok(third.changed.includes('route 10.10.2.2/32 removed'));
    assert.ok(await d1.hasVm('default.a-1'));
    assert.equal(await d1.hasVm('default.b-0'), false);
    const table2 = await execOk(transports[0]!, ['nft', 'list', 'table', 'inet', 'virtualinux']);
    assert.doesNotMatch(table2, /10\.10\.2\.0\/24/, "b's subnet left both sets");

    await d1.teardown();
    assert.equal((await execOk(transports[0]!, ['ip', '-j', 'route', 'show', 'proto', RT_PROTO])).trim(), '[]');
    assert.equal((await d1.ourTaps()).size, 0);
    const r = await transports[0]!.exec(['nft', 'list', 'table', 'inet', 'virtualinux']);
    assert.notEqual(r.code, 0, 'the table is gone');
  });

  it('routes a VC whose VMs share another node through it in one route (its VM here on its tap), and removes that route when they part', async () => {
    const [n1, n2] = tb!.nodes;
    const d1 = new HostNetworkDriver(transports[0]!);
    const routes = async () => new Map((JSON.parse(await execOk(transports[0]!, ['ip', '-j', 'route', 'show', 'proto', RT_PROTO])) as { dst: string; dev?: string; gateway?: string }[]).map((r) => [r.dst, r]));
    const get = (ip: string) => execOk(transports[0]!, ['ip', '-o', 'route', 'get', ip]);
    const vms = [
      vm('default.c-0', 'default/c', '10.10.3.2', '10.10.3.0/24', n2!.name),
      vm('default.c-1', 'default/c', '10.10.3.3', '10.10.3.0/24', n2!.name),
      vm('default.c-2', 'default/c', '10.10.3.4', '10.10.3.0/24', n1!.name),
    ];
    await d1.apply(planHostNetwork(n1!.name, hosts(), vms));
    let r = await routes();
    assert.equal(r.get('10.10.3.0/24')?.gateway, n2!.address, 'the subnet through the node holding two of its VMs');
    assert.equal(r.get('10.10.3.4')?.dev, tapName('default.c-2'));
    assert.deepEqual([...r.keys()].sort(), ['10.10.3.0/24', '10.10.3.4'], 'no /32 for c-0 and c-1');
    // what the kernel picks: c-0 and c-1 through n2, c-2 on its tap (the longer prefix)
    assert.match(await get('10.10.3.3'), new RegExp(`via ${n2!.address.replace(/\./g, '\\.')} `));
    assert.match(await get('10.10.3.4'), new RegExp(`dev ${tapName('default.c-2')} `));
    assert.deepEqual((await d1.apply(planHostNetwork(n1!.name, hosts(), vms))).changed, [], 'a second apply changes nothing');

    // c-0 moves here: this node holds two, so the others reach c through it; here, one /32 each.
    const moved = [{ ...vms[0]!, host: n1!.name }, vms[1]!, vms[2]!];
    const second = await d1.apply(planHostNetwork(n1!.name, hosts(), moved));
    assert.ok(second.changed.includes('route 10.10.3.0/24 removed'), second.changed.join('; '));
    r = await routes();
    assert.deepEqual([...r.keys()].sort(), ['10.10.3.2', '10.10.3.3', '10.10.3.4']);
    assert.equal(r.get('10.10.3.3')?.gateway, n2!.address);
    assert.match(await get('10.10.3.2'), new RegExp(`dev ${tapName('default.c-0')} `));
    // and n2's plan now routes the subnet through here
    assert.deepEqual(planHostNetwork(n2!.name, hosts(), moved).routes.find((x) => x.dest === '10.10.3.0/24'), { dest: '10.10.3.0/24', via: n1!.address });

    await d1.apply(planHostNetwork(n1!.name, hosts(), vms)); // the aggregate back, then torn down
    await d1.teardown();
    assert.equal((await execOk(transports[0]!, ['ip', '-j', 'route', 'show', 'proto', RT_PROTO])).trim(), '[]');
  });

  it('loads the table atomically: an invalid ruleset leaves the previous table in place', async () => {
    const n1 = tb!.nodes[0]!;
    const d = new HostNetworkDriver(transports[0]!);
    const good = planHostNetwork(n1.name, hosts(), [vm('default.a-0', 'default/a', '10.10.1.2', '10.10.1.0/24', n1.name)]);
    await d.apply(good);
    const broken = { ...good, nftRuleset: good.nftRuleset.replace('policy accept;', 'policy accept;\n    this is not nft\n') };
    await assert.rejects(d.apply(broken), /nft/);
    assert.ok(await d.hasVm('default.a-0'), 'the old rules are still loaded');
    await d.teardown();
  });

  it('hasVm reads a table loaded before the anti-spoofing rules had chains of their own whole', async () => {
    const n1 = tb!.nodes[0]!;
    const d = new HostNetworkDriver(transports[0]!);
    const plan = planHostNetwork(n1.name, hosts(), [vm('default.a-0', 'default/a', '10.10.1.2', '10.10.1.0/24', n1.name)]);
    await d.apply(plan);
    // the same rules in the base chains, as an older vc-manager loaded them
    const tap = tapName('default.a-0');
    const old = ['table inet virtualinux', 'delete table inet virtualinux', 'table inet virtualinux {',
      ...['forward', 'input'].flatMap((hook) => [`  chain ${hook} {`, `    type filter hook ${hook} priority filter; policy accept;`,
        `    iifname "${tap}" ip saddr != 10.10.1.2 drop comment "antispoof ${hook} default.a-0"`, '  }']), '}', ''].join('\n');
    await execOk(transports[0]!, ['nft', '-f', '-'], { stdin: old });
    assert.notEqual((await transports[0]!.exec(['nft', 'list', 'chain', 'inet', 'virtualinux', 'antispoof_forward'])).code, 0, 'no such chain');
    assert.ok(await d.hasVm('default.a-0'));
    assert.equal(await d.hasVm('default.a-1'), false);
    await d.teardown();
  });

  it('names the first ROUTES_TOLD route changes and counts the rest, every route in place', async () => {
    const [n1, n2] = tb!.nodes;
    // 40 VCs of one VM each on node 2: a /32 each on node 1 (no aggregate for a single VM)
    const vms = Array.from({ length: 40 }, (_, i) => vm(`default.m${i}-0`, `default/m${i}`, `10.30.${i}.2`, `10.30.${i}.0/24`, n2!.name));
    const d1 = new HostNetworkDriver(transports[0]!);
    try {
      const { changed } = await d1.apply(planHostNetwork(n1!.name, hosts(), vms));
      const told = changed.filter((c) => c.startsWith('route '));
      assert.equal(told.length, ROUTES_TOLD, changed.join('; '));
      assert.ok(changed.includes(`and ${40 - ROUTES_TOLD} more route changes`), changed.join('; '));
      const routes = JSON.parse(await execOk(transports[0]!, ['ip', '-j', 'route', 'show', 'proto', RT_PROTO])) as { dst: string; gateway?: string }[];
      for (let i = 0; i < 40; i++) assert.equal(routes.find((r) => r.dst === `10.30.${i}.2`)?.gateway, n2!.address, `10.30.${i}.2`);
    } finally {
      await d1.teardown();
    }
  });

  it('refuses a route that would be two words of an ip batch, before sending the batch', async () => {
    const [n1, n2] = tb!.nodes;
    const d1 = new HostNetworkDriver(transports[0]!);
    const state = planHostNetwork(n1!.name, hosts(), [vm('default.q-0', 'default/q', '10.40.0.2', '10.40.0.0/24', n2!.name)]);
    try {
      await assert.rejects(d1.apply({ ...state, routes: [{ dest: '10.40.0.2/32 dev lo', via: n2!.address }] }), /refusing "10\.40\.0\.2\/32 dev lo" in an ip batch/);
      assert.ok(!(await d1.ourRoutes()).has('10.40.0.2'), 'no route of the batch was sent');
    } finally {
      await d1.teardown();
    }
  });
});
