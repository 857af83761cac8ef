// The simulated host (drivers/transport/sim-*.ts), its hypervisor and storage drivers
// (drivers/hypervisor/sim-driver.ts, drivers/storage/sim-driver.ts): SIMULATION ONLY, for
// hack/bench-scale; nothing here is the proof that a feature works on real hosts. Asserted: the
// state each call leaves behind, under injected faults (a host that stops answering, a migration
// that fails), through the same drivers and probe the controllers use.

import { strict as assert } from 'node:assert';
import type { PhysicalNode } from '../../api/types.js';
import { validateObject } from '../../api/validation/validate-object.js';
import { createHypervisorDriver, MigrationFailedError, type DomainSpec, type HypervisorDriver } from '../../drivers/hypervisor/index.js';
import { SimHypervisorDriver } from '../../drivers/hypervisor/sim-driver.js';
import { HostNetworkDriver } from '../../drivers/network/host-network.js';
import { createStorageDriver } from '../../drivers/storage/index.js';
import { SimStorageDriver, contentDigest } from '../../drivers/storage/sim-driver.js';
import { createHash } from 'node:crypto';
import { SimWorld, type SimHost } from '../../drivers/transport/sim-host.js';
import { SimTransport } from '../../drivers/transport/sim-transport.js';
import { transportFor } from '../../drivers/transport/transport-for.js';
import { TransportTimeoutError } from '../../drivers/transport/types.js';
import { nextNodeStatus, probeNode } from '../../reconcilers/nodes/probe.js';
import { planHostNetwork, tapName } from '../../reconcilers/network/host-plan.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const FAST = { rttMs: 0, startMs: 5, bootMs: 50, shutdownMs: 5, storageOpMs: 1, originalMs: 5, migrationFixedMs: 20, migrationBytesPerSec: 4 * 2 ** 30, suspendBytesPerSec: 4 * 2 ** 30 };

function pn(name: string, extra: Partial<PhysicalNode['spec']> = {}): PhysicalNode {
  return {
    apiVersion: 'virtualinux.org/v1alpha1', kind: 'PhysicalNode', metadata: { name, generation: 1 },
    spec: { address: '198.18.0.9', ssh: { port: 22, user: 'root' } as NonNullable<PhysicalNode['spec']>['ssh'], capacity: { cores: 8, memoryMiB: 4096 }, hypervisor: 'sim', transport: 'sim', storageRoot: '/san', ...extra },
  };
}

describe('sim host (simulation only)', () => {
  let world: SimWorld;
  let hosts: SimHost[];
  let drivers: HypervisorDriver[];
  const vcDir = '/san/vcs/bench/a-uid1';
  const key = (name: string) => ({ vcDir, vcUid: 'uid1', name });

  function domain(name: string, memoryMiB = 256): DomainSpec {
    return { name, vcpus: 1, memoryMiB, disks: { root: { path: `${vcDir}/${name.split('.')[1]}-disk.img`, format: 'qcow2' } }, network: { tap: 'vt0000000000', mac: '52:54:00:00:00:01', ip: '10.1.0.2' } };
  }

  beforeEach(async () => {
    world = new SimWorld(FAST);
    hosts = ['n1', 'n2'].map((n) => world.host(n, { cores: 8, memoryMiB: 4096, storageRoot: '/san' }));
    drivers = hosts.map((h) => createHypervisorDriver('sim', { transport: new SimTransport(h), runRoot: '/run/virtualinux', migrationAddress: h.name }));
    const storage = createStorageDriver('qcow2', drivers[0]!.transport);
    await storage.createOriginal(key('a-original'), { path: '/san/templates/t.qcow2' });
    await storage.snapshotAll(key('a-original'), [key('a-0-disk'), key('a-1-disk')]);
  });

  it('is chosen by transport and hypervisor sim, and the schema refuses one without the other', () => {
    const t = transportFor(pn('x1'));
    assert.ok(t instanceof SimTransport);
    assert.ok(createHypervisorDriver('sim', { transport: t, runRoot: '/r', migrationAddress: 'x' }) instanceof SimHypervisorDriver);
    assert.ok(createStorageDriver('lvm', t) instanceof SimStorageDriver);
    const bad = validateObject(pn('x2', { hypervisor: 'qemu' }));
    assert.ok(bad.issues.some((i) => i.path.join('.') === 'spec.hypervisor' && /must be sim/.test(i.message)), JSON.stringify(bad.issues));
    const good = validateObject(pn('x3'));
    assert.deepEqual(good.issues, []);
  });

  it('answers the node probe through its transport; a host that stops answering is Unreachable, then Ready again', async () => {
    const t = drivers[0]!.transport;
    const probe = await probeNode(t, { hypervisor: 'sim', storageRoot: '/san' }, { timeoutMs: 2000 });
    assert.equal(probe.cores, 8);
    assert.equal(probe.memoryMiB, 4096);
    assert.equal(probe.storage, 'ok');
    assert.match(probe.hypervisorVersion!, /^sim /);
    const ready = nextNodeStatus(pn('n1'), probe, { failures: 0, failureThreshold: 1 });
    assert.equal(ready.status.conditions?.find((c) => c.type === 'Ready')?.status, 'True');

    hosts[0]!.setUnreachable(true);
    const lost = await probeNode(t, { hypervisor: 'sim', storageRoot: '/san' }, { timeoutMs: 200 });
    assert.equal(lost.failure?.reason, 'Unreachable');
    assert.match(lost.failure!.message, /timed out after 200 ms/);
    const notReady = nextNodeStatus({ ...pn('n1'), status: ready.status }, lost, { failures: 0, failureThreshold: 1 });
    assert.equal(notReady.status.conditions?.find((c) => c.type === 'Ready')?.status, 'False');
    hosts[0]!.setUnreachable(false);
    assert.equal((await probeNode(t, { hypervisor: 'sim', storageRoot: '/san' }, { timeoutMs: 2000 })).storage, 'ok');
  });

  it('a domain boots after the boot delay, its calls time out while the host is silent, and its state survives the silence', async () => {
    const d = drivers[0]!;
    await assert.rejects(d.create({ ...domain('bench.a-0'), disks: { root: { path: '/san/nope.img', format: 'qcow2' } } }), /could not open disk image/);
    assert.equal(await d.get('bench.a-0'), undefined, 'a failed create leaves nothing');
    assert.equal((await d.create(domain('bench.a-0'))).state, 'running');
    assert.doesNotMatch((await d.readConsole('bench.a-0')).text, /VIRTUALINUX-READY/);
    assert.equal(await d.pingGuestAgent!('bench.a-0', 1000), undefined);
    await new Promise((r) => setTimeout(r, FAST.bootMs + 20));
    assert.match((await d.readConsole('bench.a-0')).text, /VIRTUALINUX-READY a-0 10\.1\.0\.2/);
    assert.equal((await d.pingGuestAgent!('bench.a-0', 1000))?.ip, '10.1.0.2');

    hosts[0]!.setUnreachable(true);
    await assert.rejects(d.transport.exec(['vl-sim', 'domain', 'list'], { timeoutMs: 150 }), TransportTimeoutError);
    hosts[0]!.setUnreachable(false);
    assert.deepEqual((await d.list()).map((x) => [x.name, x.state]), [['bench.a-0', 'running']]);
  });

  it('a migration that fails leaves the domain running on the source and nothing on the target; the next one moves it', async () => {
    const [src, tgt] = drivers as [HypervisorDriver, HypervisorDriver];
    await src.create(domain('bench.a-0'));
    hosts[0]!.failMigrations = 1;
    await assert.rejects(src.migrate('bench.a-0', tgt), (e: Error) => e instanceof MigrationFailedError && /injected fault/.test(e.message));
    assert.equal((await src.get('bench.a-0'))?.state, 'running');
    assert.equal(await tgt.get('bench.a-0'), undefined);

    hosts[1]!.setUnreachable(true);
    await assert.rejects(src.migrate('bench.a-0', tgt, { timeoutMs: 100 }), MigrationFailedError);
    hosts[1]!.setUnreachable(false);
    assert.equal((await src.get('bench.a-0'))?.state, 'running', 'an unreachable target leaves the source running');
    assert.equal(await tgt.get('bench.a-0'), undefined);

    const r = await src.migrate('bench.a-0', tgt);
    assert.equal(await src.get('bench.a-0'), undefined);
    assert.equal((await tgt.get('bench.a-0'))?.state, 'running');
    assert.equal(r.transferredBytes, 256 * 1048576);
    assert.ok(r.totalMs >= FAST.migrationFixedMs, `total ${r.totalMs} ms`);
  });

  it('migration time grows with memory; a cancelled migration leaves the domain on the source', async () => {
    world.behaviour = { ...world.behaviour, migrationBytesPerSec: 1 << 30 };
    const [src, tgt] = drivers as [HypervisorDriver, HypervisorDriver];
    await src.create(domain('bench.a-0', 128));
    await src.create(domain('bench.a-1', 1024));
    const small = await src.migrate('bench.a-0', tgt);
    const large = await src.migrate('bench.a-1', tgt);
    assert.ok(large.totalMs >= small.totalMs + 700, `1 GiB ${large.totalMs} ms, 128 MiB ${small.totalMs} ms`);

    const back = tgt.migrate('bench.a-1', src);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await tgt.cancelMigration('bench.a-1'), true);
    await assert.rejects(back, /cancelled/);
    assert.equal((await tgt.get('bench.a-1'))?.state, 'running');
    assert.equal(await src.get('bench.a-1'), undefined);
  });

  it('suspends to the shared storage root and resumes on the other host; a killed domain is shut off', async () => {
    const [a, b] = drivers as [HypervisorDriver, HypervisorDriver];
    await a.create(domain('bench.a-0'));
    const file = '/san/runtime/bench/a-0.vmstate';
    const s = await a.suspend('bench.a-0', file);
    assert.equal(s.bytes, 256 * 1048576);
    assert.equal(await a.get('bench.a-0'), undefined);
    assert.equal((await b.transport.exec(['test', '-e', file])).code, 0, 'the state file is on the shared root');
    assert.equal((await b.resume(domain('bench.a-0'), file)).state, 'running');
    assert.equal((await b.transport.exec(['test', '-e', file])).code, 1, 'resumed: the file is gone');
    assert.equal(hosts[1]!.killDomain('bench.a-0'), true);
    assert.equal((await b.get('bench.a-0'))?.state, 'shutoff');
  });

  it('the network driver converges on a sim host (taps, routes, nft rules)', async () => {
    const net = new HostNetworkDriver(drivers[0]!.transport);
    const state = planHostNetwork('n1', [{ name: 'n1', address: '198.18.0.1' }, { name: 'n2', address: '198.18.0.2' }], [
      { key: 'bench.a-0', cluster: 'bench/a', ip: '10.1.0.2', subnet: '10.1.0.0/24', gateway: '10.1.0.1', host: 'n1' },
      { key: 'bench.a-1', cluster: 'bench/a', ip: '10.1.0.3', subnet: '10.1.0.0/24', gateway: '10.1.0.1', host: 'n2' },
    ]);
    assert.ok((await net.apply(state)).changed.length > 0);
    assert.equal(await net.hasVm('bench.a-0'), true);
    assert.equal(await net.hasVm('bench.a-1'), false);
    assert.deepEqual((await net.apply(state)).changed, [], 'a second apply changes nothing');
    assert.deepEqual([...(await net.ourRoutes()).keys()].sort(), ['10.1.0.2', '10.1.0.3']);
  });

  it('hosts of one world share equal routes and rule comments (one value each), and each keeps its own table', async () => {
    const hostsList = [{ name: 'n1', address: '198.18.0.1' }, { name: 'n2', address: '198.18.0.2' }];
    const vms = [
      { key: 'bench.s-0', cluster: 'bench/s', ip: '10.2.0.2', subnet: '10.2.0.0/29', gateway: '10.2.0.1', host: 'n1' },
      { key: 'bench.s-1', cluster: 'bench/s', ip: '10.2.0.3', subnet: '10.2.0.0/29', gateway: '10.2.0.1', host: 'n2' },
      { key: 'bench.t-0', cluster: 'bench/t', ip: '10.2.0.10', subnet: '10.2.0.8/29', gateway: '10.2.0.9', host: 'n2' },
    ];
    for (const [i, h] of ['n1', 'n2'].entries()) await new HostNetworkDriver(drivers[i]!.transport).apply(planHostNetwork(h, hostsList, vms));
    const [r1, r2] = hosts.map((h) => h.net.routes);
    // 10.2.0.10 is routed via n2 on n1; on n2 it is the tap's: different values, each kept
    assert.equal(r1!.get('10.2.0.10')?.gateway, '198.18.0.2');
    assert.equal(r2!.get('10.2.0.10')?.dev, tapName('bench.t-0'));
    // A third host routes t-0 via n2 as n1 does: that route is one shared, frozen value.
    const n3 = new SimTransport(world.host('n3', { cores: 8, memoryMiB: 4096, storageRoot: '/san' }));
    await new HostNetworkDriver(n3).apply(planHostNetwork('n3', [...hostsList, { name: 'n3', address: '198.18.0.3' }], vms));
    const r3 = world.hosts.get('n3')!.net.routes;
    assert.equal(r3.get('10.2.0.10'), r1!.get('10.2.0.10'), 'the same route on two hosts is one object');
    assert.ok(Object.isFrozen(r3.get('10.2.0.10')), 'shared values cannot be changed through one host');
    assert.equal(r3.size, 3);
    // a removal on one host leaves the other's table alone
    assert.equal((await n3.exec(['ip', 'route', 'del', '10.2.0.10/32', 'proto', '188'])).code, 0);
    assert.equal(r3.has('10.2.0.10'), false);
    assert.equal(r3.size, 2);
    assert.equal(r1!.get('10.2.0.10')?.gateway, '198.18.0.2');
    assert.deepEqual([...r3.values()].map((r) => r.dst).sort(), ['10.2.0.2', '10.2.0.3']);
    // the isolation rules' comments: equal strings on every host
    const c1 = hosts[0]!.net.tables.get('inet virtualinux')!;
    const c3 = world.hosts.get('n3')!.net.tables.get('inet virtualinux')!;
    assert.ok(c1.includes('isolate forward') && c3.includes('isolate forward'));
    await new HostNetworkDriver(n3).teardown();
    world.hosts.delete('n3');
  });

  it('keeps no command input alive: what a host holds does not refer to its batch or ruleset text', async function () {
    this.timeout(60_000);
    // A name cut out of a long text (13 characters or more), and a key made of such names, refer
    // into that text: the chains' keys kept every host's whole ruleset and the route keys its
    // whole batch (hack/bench-scale 10,000 VMs: ~360 MiB of the manager's heap). 24 hosts each
    // load a batch of 9,000 routes and a ruleset of 9,000 rules, ~1.5 MiB of text their own.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const heap = () => { for (let i = 0; i < 3; i++) gc(); return process.memoryUsage().heapUsed; };
    const w = new SimWorld(FAST);
    const HOSTS = 24;
    const tap = (h: number) => `vt${String(h).padStart(10, '0')}`;
    const batch = (h: number) => [
      `link set dev ${tap(h)} up`,
      ...Array.from({ length: 9000 }, (_, i) => `route replace 10.7.${i >> 8}.${i & 255}/32 proto 188 via 198.18.200.200`),
      `route replace 10.99.0.${h}/32 proto 188 dev ${tap(h)}`, ''].join('\n');
    const ruleset = (h: number) => [
      'table inet virtualinux', 'delete table inet virtualinux', 'table inet virtualinux {',
      '  chain antispoof_forward {', `    iifname "${tap(h)}" ip saddr != 10.99.0.${h} drop comment "antispoof forward h${h}"`, '  }',
      '  chain forward {', '    type filter hook forward priority filter; policy accept;', '    jump antispoof_forward',
      ...Array.from({ length: 9000 }, (_, i) => `    ip saddr 10.${h}.${i >> 8}.${i & 255}/29 ip daddr @vc_subnets ip daddr != 10.${h}.${i >> 8}.${i & 255}/29 drop comment "isolate forward v${i}"`),
      '  }', '}', ''].join('\n');
    const transports = Array.from({ length: HOSTS }, (_, h) => new SimTransport(w.host(`k${h}`, { cores: 8, memoryMiB: 4096, storageRoot: '/san' })));
    const before = heap();
    let text = 0;
    for (const [h, t] of transports.entries()) {
      const [b, r] = [batch(h), ruleset(h)];
      text += b.length + r.length;
      assert.equal((await t.exec(['ip', 'tuntap', 'add', 'dev', tap(h), 'mode', 'tap'])).code, 0);
      assert.equal((await t.exec(['ip', '-batch', '-'], { stdin: b })).code, 0);
      assert.equal((await t.exec(['nft', '-f', '-'], { stdin: r })).code, 0);
    }
    const grown = heap() - before;
    // (Read back only now: a lookup with an equal key can make V8 copy the kept key.)
    for (const [h, t] of transports.entries()) {
      assert.match((await t.exec(['nft', '-j', 'list', 'chain', 'inet', 'virtualinux', 'antispoof_forward'])).stdout, new RegExp(`antispoof forward h${h}"`));
      assert.equal(w.hosts.get(`k${h}`)!.net.routes.get(`10.99.0.${h}`)?.dev, tap(h));
      assert.equal(w.hosts.get(`k${h}`)!.net.routes.size, 9001);
    }
    assert.ok(text > HOSTS * 1_400_000, `the inputs are ${text} bytes`);
    // What the hosts must keep: 9,000 routes and 9,000 comments shared by all (one value each)
    // and each host's tables of pointers to them: ~10 MiB, under half the text (its whole input
    // kept, as before the copies, was 32 MiB).
    assert.ok(grown < text / 2, `the heap grew by ${(grown / 2 ** 20).toFixed(1)} MiB for ${(text / 2 ** 20).toFixed(1)} MiB of input`);
  });

  it('storage volumes live on the shared root, each key once; usage and removal', async () => {
    const st = createStorageDriver('qcow2', drivers[1]!.transport);
    assert.deepEqual(await st.existsAll([key('a-0-disk'), key('a-9-disk')]), [true, false]);
    await st.createSwapAll([key('a-0-swap')], 64 << 20);
    await st.writeConfigAll([{ key: key('a-0-config'), bytes: Buffer.alloc(1 << 20, 1) }]);
    assert.deepEqual(await st.usageAll([key('a-0-swap'), key('a-0-config')]), [64 << 20, 1 << 20]);
    await st.removeAll([key('a-0-swap'), key('a-0-disk')]);
    assert.deepEqual(await st.existsAll([key('a-0-swap'), key('a-0-disk'), key('a-1-disk')]), [false, false, true]);
  });

  it('a config disk is kept as the digest of its content up to its last non-zero byte, wherever that byte is', () => {
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const disk = (at: number[]) => {
      const b = Buffer.alloc(1 << 20);
      b.write('vc/config.env', 0);
      for (const i of at) b[i] = 7;
      return b;
    };
    assert.equal(contentDigest(disk([])), sha(Buffer.from('vc/config.env')));
    assert.equal(contentDigest(Buffer.alloc(1 << 20)), sha(Buffer.alloc(0)));
    // A byte far in the padding, at and around the 64 KiB blocks' edges, and the very last one: each is content.
    for (const i of [900_000, 65_535, 65_536, (1 << 20) - 65_536, (1 << 20) - 1]) {
      const d = disk([i]);
      assert.equal(contentDigest(d), sha(d.subarray(0, i + 1)), `a byte at ${i}`);
      assert.notEqual(contentDigest(d), contentDigest(disk([])), `a byte at ${i} left out`);
    }
  });
});
