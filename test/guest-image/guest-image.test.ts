// The reference guest: what `hack/guest-image build` produces, and that the guest applies its
// first-boot configuration (ADR 0002) when booted for real, on a testbed node (its tap interface
// lives in the node's network namespace, so the guest is reachable only from there).

import { strict as assert } from 'node:assert';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { QemuDriver } from '../../drivers/hypervisor/qemu-driver.js';
import type { DomainSpec } from '../../drivers/hypervisor/types.js';
import { SshTransport } from '../../drivers/transport/ssh-transport.js';
import { buildGuestImage, GUEST_CMDLINE, guestModules, NFS_MODULE_DIR, orderModules } from '../../hack/lib/guest-image.js';
import { nodeExec, testbedDown, testbedUp, type TestbedState } from '../../hack/lib/testbed.js';
import { GUEST_CACHE, guestEnv, makeNodeDisks, referenceGuest } from '../hypervisor/node-disks.js';

describe('reference guest image', function () {
  this.timeout(300_000);

  it('orders kernel modules dependencies first and skips built-in or absent ones', () => {
    const dep = [
      'kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko',
      'kernel/net/9p/9pnet.ko:',
      'kernel/fs/netfs/netfs.ko:',
      'kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko',
      'kernel/drivers/virtio/virtio_ring.ko:',
    ].join('\n');
    assert.deepEqual(orderModules(dep, 'kernel/fs/ext4/ext4.ko\n', ['ext4', '9p', '9pnet_virtio', 'xen-blkfront']), [
      'kernel/net/9p/9pnet.ko',
      'kernel/fs/netfs/netfs.ko',
      'kernel/fs/9p/9p.ko',
      'kernel/drivers/virtio/virtio_ring.ko',
      'kernel/net/9p/9pnet_virtio.ko',
    ]);
  });

  it('puts the NFS client modules the initramfs lacks on the root disk, dependencies first', () => {
    const dep = [
      'kernel/fs/nfs/nfsv4.ko: kernel/net/dns_resolver/dns_resolver.ko kernel/fs/nfs/nfs.ko kernel/fs/lockd/lockd.ko kernel/fs/nfs_common/grace.ko kernel/net/sunrpc/sunrpc.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko',
      'kernel/fs/nfs/nfs.ko: kernel/fs/lockd/lockd.ko kernel/fs/nfs_common/grace.ko kernel/net/sunrpc/sunrpc.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko',
      'kernel/fs/lockd/lockd.ko: kernel/fs/nfs_common/grace.ko kernel/net/sunrpc/sunrpc.ko',
      'kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko',
      ...['kernel/net/9p/9pnet.ko', 'kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko', 'kernel/fs/netfs/netfs.ko',
        'kernel/fs/nfs_common/grace.ko', 'kernel/net/sunrpc/sunrpc.ko', 'kernel/net/dns_resolver/dns_resolver.ko'].map((l) => l.includes(':') ? l : `${l}:`),
    ].join('\n');
    const m = guestModules(dep, '');
    assert.ok(m.boot.includes('kernel/fs/fscache/fscache.ko'));
    assert.deepEqual(m.nfs.map((f) => f.replace(/^.*\//, '')), ['dns_resolver.ko', 'grace.ko', 'sunrpc.ko', 'lockd.ko', 'nfs.ko', 'nfsv4.ko']);
  });

  it('builds a kernel, an initramfs and a qcow2 root disk with an OSTemplate of absolute paths; a rebuild is a cached no-op', () => {
    const g = referenceGuest();
    const t = parse(readFileSync(g.ostemplate, 'utf8'));
    assert.equal(t.kind, 'OSTemplate');
    assert.deepEqual(t.spec, {
      image: { path: join(GUEST_CACHE, 'rootfs.qcow2'), format: 'qcow2' },
      boot: { kernel: join(GUEST_CACHE, 'vmlinux'), initrd: join(GUEST_CACHE, 'initrd.img'), cmdline: GUEST_CMDLINE },
      guestAgent: true,
      revision: 1,
    });
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', g.image], { encoding: 'utf8' }));
    assert.equal(info.format, 'qcow2');
    assert.equal(readFileSync(g.kernel).subarray(0, 4).toString('latin1'), '\x7fELF');
    const initrdList = execFileSync('sh', ['-c', 'zcat "$1" | cpio -t --quiet', 'sh', g.initrd], { encoding: 'utf8' });
    for (const f of ['init', 'bin/busybox', 'etc/modules.order']) assert.match(initrdList, new RegExp(`^${f}$`, 'm'));
    assert.match(initrdList, /^lib\/modules\/virtio_blk\.ko$/m);
    assert.match(initrdList, /^lib\/modules\/9pnet_virtio\.ko$/m);
    assert.doesNotMatch(initrdList, /nfs/);
    // The root disk holds the NFS client's modules with their load order (rcS reads it).
    const raw = join(tmpdir(), `vc-gi-root-${process.pid}.raw`);
    try {
      execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', g.image, raw]);
      const order = execFileSync('debugfs', ['-R', `cat /${NFS_MODULE_DIR}/modules.order`, raw], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      assert.equal(order, 'dns_resolver.ko\ngrace.ko\nsunrpc.ko\nlockd.ko\nnfs.ko\nnfsv4.ko\n');
      const ls = execFileSync('debugfs', ['-R', `ls /${NFS_MODULE_DIR}`, raw], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      for (const f of order.trim().split('\n')) assert.match(ls, new RegExp(`\\b${f.replace('.', '\\.')}\\b`));
    } finally {
      execFileSync('rm', ['-f', raw]);
    }
    const before = statSync(g.image).mtimeMs;
    const again = buildGuestImage({ out: GUEST_CACHE, log: () => {} });
    assert.equal(again.cached, true);
    assert.equal(statSync(g.image).mtimeMs, before);
  });

  describe('booted on a testbed node', () => {
    let dir: string;
    let tb: TestbedState | undefined;
    let d: QemuDriver;
    let spec: DomainSpec;
    let shared: string;
    let ganesha: ChildProcess | undefined;
    const name = 'test.gi-0';

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'vc-gi-'));
      tb = await testbedUp({ nodes: 1, dir });
      const n = tb.nodes[0]!;
      d = new QemuDriver({
        transport: new SshTransport({ host: n.name, address: n.address, port: n.port, user: 'root', identityFile: tb.identityFile, hostKey: n.hostKey }),
        runRoot: join(n.stateDir, 'run'),
        migrationAddress: n.address,
        accel: 'tcg',
      });
      shared = join(tb.sanDir, 'shared');
      mkdirSync(shared, { recursive: true });
      const g = referenceGuest();
      const firstboot = [
        'echo "firstboot $VC_NODE_NAME" >> "$VC_SHARED_MOUNT/report"',
        '{ echo "host $(hostname)"; grep -c vdb /proc/swaps | sed "s/^/swaps /"; ip -4 -o addr show eth0; ip route; } > "$VC_SHARED_MOUNT/state"',
      ].join('\n');
      const disks = makeNodeDisks(join(tb.sanDir, 'gi-0'), guestEnv('gi-0', '198.19.7.2', { VC_HOSTNAME: "gi-0.it's", VC_SHARED_MOUNT: '/shared' }), firstboot);
      spec = {
        name,
        vcpus: 1,
        memoryMiB: 128,
        boot: { kernel: g.kernel, initrd: g.initrd, cmdline: g.cmdline },
        disks: { root: { path: disks.root, format: 'qcow2' }, swap: { path: disks.swap, format: 'raw' }, config: { path: disks.config, format: 'raw', readOnly: true } },
        sharedDir: shared,
        network: { tap: 'vcgi0', mac: '52:54:00:07:00:02' },
      };
    });
    after(async function () {
      this.timeout(60_000);
      await d?.destroy(name).catch(() => undefined);
      if (ganesha?.pid && ganesha.exitCode === null) {
        const exited = new Promise((r) => ganesha!.once('exit', r));
        ganesha.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (ganesha.exitCode === null) ganesha.kill('SIGKILL');
      }
      await d?.transport.close();
      if (tb) await testbedDown(dir);
      await rm(dir, { recursive: true, force: true });
    });

    it('mounts its shared storage over NFSv4.1 from the gateway when VC_SHARED_NFS says so; firstboot writes into it', async function () {
      this.timeout(240_000);
      const n = tb!.nodes[0]!;
      // The node's NFS server: ganesha in the node's namespace, exporting a directory as
      // /vc/test/tvc to the VC's subnet (what the node's gateway serves, docs/adr/0002).
      const exported = join(dir, 'nfs-export');
      const recovery = join(dir, 'nfs-recovery');
      mkdirSync(exported, { recursive: true });
      mkdirSync(recovery, { recursive: true });
      const conf = join(dir, 'ganesha.conf');
      writeFileSync(conf, `NFS_CORE_PARAM { Protocols = 4; NFS_Port = 2049; Enable_NLM = false; Enable_RQUOTA = false; }
NFSv4 { Graceless = true; RecoveryBackend = fs; RecoveryRoot = ${recovery}; }
NFS_KRB5 { Active_krb5 = false; }
EXPORT { Export_Id = 1; Path = ${exported}; Pseudo = /vc/test/tvc; Access_Type = None; Squash = No_Root_Squash;
  Protocols = 4; Transports = TCP; SecType = sys; CLIENT { Clients = 198.19.8.0/24; Access_Type = RW; } FSAL { Name = VFS; } }
`);
      ganesha = spawn('ip', ['netns', 'exec', n.netns, 'ganesha.nfsd', '-F', '-f', conf, '-L', join(dir, 'ganesha.log'), '-p', join(dir, 'ganesha.pid'), '-N', 'NIV_EVENT'], { stdio: 'ignore' });
      const g = referenceGuest();
      const nfsName = 'test.gi-1';
      const env = guestEnv('gi-1', '198.19.8.2', { VC_SUBNET: '198.19.8.0/24', VC_GATEWAY: '198.19.8.1', VC_PEERS: '198.19.8.2', VC_SHARED_MOUNT: '/shared', VC_SHARED_NFS: '198.19.8.1:/vc/test/tvc' });
      const disks = makeNodeDisks(join(tb!.sanDir, 'gi-1'), env, '{ echo "firstboot $VC_NODE_NAME"; grep " /shared " /proc/mounts; } > "$VC_SHARED_MOUNT/from-guest"\n');
      const nfsSpec: DomainSpec = {
        ...spec,
        name: nfsName,
        disks: { root: { path: disks.root, format: 'qcow2' }, swap: { path: disks.swap, format: 'raw' }, config: { path: disks.config, format: 'raw', readOnly: true } },
        network: { tap: 'vcgi1', mac: '52:54:00:08:00:02' },
      };
      delete nfsSpec.sharedDir; // no 9p device: the share comes over the network only
      const t0 = Date.now();
      await d.create(nfsSpec);
      try {
        await nodeExec(n, ['ip', 'addr', 'add', '198.19.8.1/24', 'dev', 'vcgi1']);
        await nodeExec(n, ['ip', 'link', 'set', 'vcgi1', 'up']);
        await d.waitForConsole(nfsName, /VIRTUALINUX-READY gi-1 198\.19\.8\.2/, 180_000);
        process.stderr.write(`      (NFS guest READY ${Date.now() - t0} ms after create)\n`);
        const written = readFileSync(join(exported, 'from-guest'), 'utf8');
        assert.match(written, /^firstboot gi-1$/m);
        assert.match(written, /^198\.19\.8\.1:\/vc\/test\/tvc \/shared nfs4 \S*vers=4\.1\S*proto=tcp/m);
      } finally {
        await d.destroy(nfsName).catch(() => undefined);
      }
    });

    it('applies hostname, address and route, swap and the 9p share, runs firstboot once, prints READY on every boot', async () => {
      const t0 = Date.now();
      await d.create(spec);
      await d.waitForConsole(name, /VIRTUALINUX-READY gi-0 198\.19\.7\.2/, 120_000);
      process.stderr.write(`      (9p guest READY ${Date.now() - t0} ms after create)\n`);
      const state = readFileSync(join(shared, 'state'), 'utf8');
      assert.match(state, /^host gi-0\.it's$/m);
      assert.match(state, /^swaps 1$/m);
      assert.match(state, /eth0\s+inet 198\.19\.7\.2\/24/);
      assert.match(state, /^default via 198\.19\.7\.1 dev eth0 onlink/m);
      // The guest answers on its address from the node's namespace, through the node's tap.
      const n = tb!.nodes[0]!;
      await nodeExec(n, ['ip', 'addr', 'add', '198.19.7.1/24', 'dev', 'vcgi0']);
      await nodeExec(n, ['ip', 'link', 'set', 'vcgi0', 'up']);
      const ping = await nodeExec(n, ['ping', '-c', '1', '-W', '5', '198.19.7.2']);
      assert.equal(ping.code, 0, ping.stdout + ping.stderr);

      await d.destroy(name);
      await d.create(spec);
      await d.waitForConsole(name, /VIRTUALINUX-READY gi-0 198\.19\.7\.2/, 120_000);
      assert.equal(readFileSync(join(shared, 'report'), 'utf8'), 'firstboot gi-0\n', 'firstboot ran exactly once');
    });
  });
});
