// The NFS server's state directory lives under the node's run root beside the domains' (issue 14):
// the QEMU driver must not take it for a domain named `nfs` (the orphan collector destroyed it,
// and with it the server's config, pid file and recovery state, a minute after an NFS VC started).
// Real QemuDriver and real qemu-system on this machine through LocalTransport; the NFS files are
// laid out at the paths NfsServerDriver uses (no ganesha is started here: it would listen on this
// machine's port 2049; test/e2e/nfs-orphan-grace.e2e.test.ts runs the real one past the grace).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QemuDriver } from '../../drivers/hypervisor/qemu-driver.js';
import { HypervisorError } from '../../drivers/hypervisor/types.js';
import { NfsServerDriver } from '../../drivers/nfs/nfs-server.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';

describe('QemuDriver beside the NFS server state under one run root', function () {
  this.timeout(60_000);
  let dir: string;
  let runRoot: string;
  let qemu: QemuDriver;
  let nfs: NfsServerDriver;
  const transport = new LocalTransport({ host: 'node-a' });

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vl-nfs-dom-'));
    runRoot = join(dir, 'run');
    qemu = new QemuDriver({ transport, runRoot, migrationAddress: '127.0.0.1', accel: 'tcg' });
    nfs = new NfsServerDriver(transport, { runRoot });
    mkdirSync(nfs.recoveryRoot, { recursive: true });
    writeFileSync(nfs.confPath, 'EXPORT { Export_Id = 1; Path = /srv; Pseudo = /vc/default/x; }\n');
    writeFileSync(nfs.pidPath, `${process.pid}\n`); // a live pid that is not QEMU
    writeFileSync(nfs.logPath, 'NFS SERVER INITIALIZED\n');
  });
  after(async () => {
    await transport.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists only real domains: not the nfs directory, nor another directory without a spec', async () => {
    mkdirSync(join(runRoot, 'stray'));
    writeFileSync(join(runRoot, 'stray', 'notes'), 'not a domain\n');
    assert.deepEqual(await qemu.list(), []);
    assert.equal(await qemu.get('nfs'), undefined);
    assert.equal(await qemu.get('stray'), undefined);
  });

  it('still lists a shut-off domain whose files remain (a failed start keeps its spec and console)', async () => {
    const name = 'default.broken-0';
    const missing = join(dir, 'no-such-kernel');
    await assert.rejects(qemu.create({
      name,
      vcpus: 1,
      memoryMiB: 64,
      boot: { kernel: missing, cmdline: 'console=ttyS0' },
      disks: { root: { path: join(dir, 'no-root.qcow2'), format: 'qcow2' } },
    }), HypervisorError);
    assert.deepEqual((await qemu.list()).map((d) => [d.name, d.state]), [[name, 'shutoff']]);
    await qemu.destroy(name);
    assert.deepEqual(await qemu.list(), []);
    assert.equal(existsSync(qemu.paths(name).dir), false, 'destroy removed the domain directory');
  });

  it('destroy of `nfs` leaves the NFS server state in place', async () => {
    await qemu.destroy('nfs');
    assert.deepEqual(readdirSync(nfs.dir).sort(), ['ganesha.conf', 'ganesha.log', 'ganesha.pid', 'recovery']);
    await qemu.destroy('stray');
    assert.ok(existsSync(join(runRoot, 'stray', 'notes')));
  });
});
