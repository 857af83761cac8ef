import { strict as assert } from 'node:assert';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildQemuArgv, domainPaths, nameArg, qemuOptValue } from '../../drivers/hypervisor/qemu-argv.js';
import { QemuDriver } from '../../drivers/hypervisor/qemu-driver.js';
import { QmpClient } from '../../drivers/hypervisor/qmp-client.js';
import { HypervisorError, MigrationFailedError, type DomainSpec } from '../../drivers/hypervisor/types.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { guestEnv, makeNodeDisks, referenceGuest } from './node-disks.js';

const spec = (name: string, dir: string): DomainSpec => ({
  name,
  vcpus: 1,
  memoryMiB: 128,
  boot: { kernel: `${dir}/vmlinux`, initrd: `${dir}/initrd.img`, cmdline: 'console=ttyS0 root=/dev/vda a=b,c' },
  disks: {
    root: { path: `${dir}/root.qcow2`, format: 'qcow2' },
    swap: { path: `${dir}/swap.img`, format: 'raw' },
    config: { path: `${dir}/config.tar`, format: 'raw', readOnly: true },
  },
});

describe('QEMU argv building', () => {
  it('doubles commas inside option values and names every value by its key', () => {
    assert.equal(qemuOptValue('a,b,,c'), 'a,,b,,,,c');
    const s = spec('ns.a,b=c d', '/san/x,y');
    s.sharedDir = '/san/shared,1';
    s.network = { tap: 'vtap,0', mac: '52:54:00:00:00:01' };
    const argv = buildQemuArgv(s, domainPaths('/run/vc', s.name), { accel: 'tcg' });
    const after = (flag: string): string[] => argv.flatMap((a, i) => (a === flag ? [argv[i + 1]!] : []));
    assert.deepEqual(after('-name'), ['guest=ns.a,,b=c d']);
    assert.equal(nameArg(s.name), 'guest=ns.a,,b=c d');
    assert.ok(after('-blockdev').includes('driver=file,node-name=vda-file,filename=/san/x,,y/root.qcow2'));
    assert.ok(after('-blockdev').includes('driver=raw,node-name=vdc,file=vdc-file,read-only=on'));
    assert.deepEqual(after('-device').slice(0, 3), ['virtio-blk-pci,drive=vda,id=vda-dev', 'virtio-blk-pci,drive=vdb,id=vdb-dev', 'virtio-blk-pci,drive=vdc,id=vdc-dev']);
    assert.deepEqual(after('-fsdev'), ['local,id=vcshared,path=/san/shared,,1,security_model=none']);
    assert.deepEqual(after('-netdev'), ['tap,id=net0,ifname=vtap,,0,script=no,downscript=no']);
    // -kernel, -append and -pidfile are plain strings to QEMU: no escaping
    assert.deepEqual(after('-kernel'), ['/san/x,y/vmlinux']);
    assert.deepEqual(after('-append'), ['console=ttyS0 root=/dev/vda a=b,c']);
    assert.deepEqual(after('-pidfile'), ['/run/vc/ns.a,b=c d/qemu.pid']);
    assert.ok(after('-chardev').includes('socket,id=console0,path=/run/vc/ns.a,,b=c d/console.sock,server=on,wait=off,logfile=/run/vc/ns.a,,b=c d/console.log,logappend=off'));
    assert.ok(after('-chardev').includes('socket,id=agent0,path=/run/vc/ns.a,,b=c d/agent.sock,server=on,wait=off'));
    assert.ok(after('-device').includes('virtserialport,bus=vser0.0,chardev=agent0,name=org.virtualinux.agent.0'));
    assert.ok(!argv.includes('-incoming'));
    assert.deepEqual(buildQemuArgv(s, domainPaths('/r', s.name), { accel: 'kvm', incoming: true }).slice(-2), ['-incoming', 'defer']);
  });

  it('boots by the firmware from vda when the spec has no kernel', () => {
    const s = spec('ns.fw', '/san/fw');
    delete s.boot;
    const argv = buildQemuArgv(s, domainPaths('/run/vc', s.name), { accel: 'tcg' });
    for (const flag of ['-kernel', '-initrd', '-append']) assert.ok(!argv.includes(flag), flag);
    assert.ok(argv.includes('virtio-blk-pci,drive=vda,id=vda-dev,bootindex=0'));
  });

  it('moves sockets whose path would exceed the unix socket limit to a hashed name', () => {
    const long = 'ns.' + 'x'.repeat(150);
    const p = domainPaths('/run/vc', long);
    assert.match(p.opsSocket, /^\/run\/vc\/\.sock\/[0-9a-f]{16}\.qmp$/);
    assert.match(p.ctlSocket, /^\/run\/vc\/\.sock\/[0-9a-f]{16}\.ctl$/);
    assert.match(p.consoleSocket, /^\/run\/vc\/\.sock\/[0-9a-f]{16}\.console$/);
    assert.match(p.agentSocket, /^\/run\/vc\/\.sock\/[0-9a-f]{16}\.agent$/);
    assert.equal(domainPaths('/run/vc', 'ns.a').opsSocket, '/run/vc/ns.a/qmp.sock');
    assert.match(p.stateLink, /^\/run\/vc\/\.xfer\/[0-9a-f]{16}$/);
  });

  it('refuses names that are not one path component and run roots unsafe for exec: URIs', async () => {
    const t = new LocalTransport();
    const d = new QemuDriver({ transport: t, runRoot: '/tmp/vc-none', migrationAddress: '127.0.0.1', accel: 'tcg' });
    for (const bad of ['', '.', '..', 'a/b', 'a\nb', '.hidden']) {
      await assert.rejects(d.get(bad), HypervisorError, JSON.stringify(bad));
    }
    assert.throws(() => new QemuDriver({ transport: t, runRoot: "/tmp/it's", migrationAddress: '127.0.0.1' }), HypervisorError);
  });

  describe('a real QEMU given an odd name and paths with commas, spaces and "="', function () {
    this.timeout(120_000);
    let dir: string;
    let d: QemuDriver;
    const name = `test.odd, name='x'=y "z"`;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'vc-argv-'));
      d = new QemuDriver({ transport: new LocalTransport(), runRoot: join(dir, 'run'), migrationAddress: '127.0.0.1', accel: 'tcg' });
    });
    after(async () => {
      await d.destroy(name).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    });

    it('starts it under exactly that name with exactly those files; a mounted 9p share blocks migration and suspend', async () => {
      const g = referenceGuest();
      const odd = join(dir, 'san, dir=1');
      const disks = makeNodeDisks(odd, guestEnv('odd-0', '198.19.7.9', { VC_SHARED_MOUNT: '/shared' }), 'echo mounted > /shared/from-guest\n');
      mkdirSync(join(odd, 'boot,x'), { recursive: true });
      copyFileSync(g.initrd, join(odd, 'boot,x', 'initrd img'));
      const s: DomainSpec = {
        name,
        vcpus: 1,
        memoryMiB: 128,
        boot: { kernel: g.kernel, initrd: join(odd, 'boot,x', 'initrd img'), cmdline: g.cmdline },
        disks: { root: { path: disks.root, format: 'qcow2' }, swap: { path: disks.swap, format: 'raw' }, config: { path: disks.config, format: 'raw', readOnly: true } },
        sharedDir: odd,
      };
      const info = await d.create(s);
      assert.equal(info.name, name);
      assert.deepEqual((await d.list()).map((x) => x.name), [name]);
      const q = await QmpClient.connect(await d.transport.connect({ unixSocket: d.paths(name).ctlSocket }));
      try {
        assert.deepEqual(await q.execute('query-name'), { name });
        const blocks = await q.execute<Array<{ inserted?: { file: string } }>>('query-block');
        const files = blocks.map((b) => b.inserted?.file).filter(Boolean);
        assert.deepEqual(files, [disks.root, disks.swap, disks.config]);
      } finally {
        q.close();
      }
      await d.waitForConsole(name, /VIRTUALINUX-READY odd-0 198\.19\.7\.9/, 90_000);
      assert.equal(readFileSync(join(odd, 'from-guest'), 'utf8'), 'mounted\n', 'the guest wrote through the 9p share at the odd path');
      assert.equal(JSON.parse(readFileSync(d.paths(name).specFile, 'utf8')).name, name);

      // QEMU blocks migration (and so suspend) while the guest has the 9p share mounted: both
      // fail, the domain keeps running here and nothing is left on the target.
      const other = new QemuDriver({ transport: d.transport, runRoot: join(dir, 'run-b'), migrationAddress: '127.0.0.1', accel: 'tcg' });
      await assert.rejects(d.migrate(name, other), (e: Error) => e instanceof MigrationFailedError && /VirtFS/.test(e.message));
      assert.deepEqual(await other.list(), []);
      await assert.rejects(d.suspend(name, join(dir, 'state')), /VirtFS/);
      assert.equal((await d.get(name))?.state, 'running');
      assert.equal(existsSync(join(dir, 'state')) || existsSync(join(dir, 'state.partial')), false);

      await d.destroy(name);
      assert.deepEqual(await d.list(), []);
    });
  });
});
