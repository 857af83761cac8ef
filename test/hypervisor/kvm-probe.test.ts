// Acceleration `auto`: a real boot check under KVM. On this machine /dev/kvm exists but a nested
// KVM guest hangs at boot, so auto must end on TCG (set VC_EXPECT_ACCEL=kvm on a host where KVM works).

import { strict as assert } from 'node:assert';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QemuDriver } from '../../drivers/hypervisor/qemu-driver.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { referenceGuest } from './node-disks.js';

/** Whether this host offers KVM at all (the driver probes only then). */
function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

describe('QemuDriver acceleration auto (KVM boot check)', function () {
  this.timeout(120_000);
  let dir: string;
  const t = new LocalTransport();
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vc-accel-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('probes KVM with a real boot, falls back to TCG here, and caches the verdict for this host boot', async () => {
    const kernel = referenceGuest().kernel;
    const d = new QemuDriver({ transport: t, runRoot: join(dir, 'run'), migrationAddress: '127.0.0.1', accel: 'auto', kvmProbeTimeoutMs: 8000 });
    const expected = process.env.VC_EXPECT_ACCEL ?? 'tcg';
    const [r1, r2] = await Promise.all([d.acceleration(kernel), d.acceleration(kernel)]);
    assert.equal(r1, expected);
    assert.equal(r2, expected, 'concurrent callers share one probe');
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    if (kvmUsable()) assert.equal(readFileSync(join(dir, 'run', '.accel'), 'utf8'), `${expected} ${bootId} ${kernel}\n`);
    else assert.ok(!existsSync(join(dir, 'run', '.accel')), 'without /dev/kvm nothing is probed, so nothing is cached');
  });

  it('decides when the early console stays mute, without waiting for the whole probe timeout', async () => {
    // Here KVM hangs before printing anything: the verdict comes after the 3 s first-output window,
    // not after the 60 s probe timeout. (Where KVM works, its panic comes within a second or two.)
    const kernel = referenceGuest().kernel;
    const d = new QemuDriver({ transport: t, runRoot: join(dir, 'mute'), migrationAddress: '127.0.0.1', accel: 'auto', kvmProbeTimeoutMs: 60_000 });
    const t0 = Date.now();
    assert.equal(await d.acceleration(kernel), process.env.VC_EXPECT_ACCEL ?? 'tcg');
    assert.ok(Date.now() - t0 < 30_000, `verdict after ${Date.now() - t0} ms`);
    const probes = (await t.exec(['pgrep', '-f', 'root=/dev/vc-kvm-probe'])).stdout.trim();
    assert.equal(probes, '', 'the probe QEMU was ended');
  });

  it('takes a cached verdict of the same host boot and kernel without probing again', async () => {
    const kernel = referenceGuest().kernel;
    const runRoot = join(dir, 'cached');
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    rmSync(runRoot, { recursive: true, force: true });
    const { mkdirSync } = await import('node:fs');
    mkdirSync(runRoot, { recursive: true });
    // A verdict opposite to what a probe gives here proves the cache was used.
    const opposite = (process.env.VC_EXPECT_ACCEL ?? 'tcg') === 'tcg' ? 'kvm' : 'tcg';
    writeFileSync(join(runRoot, '.accel'), `${opposite} ${bootId} ${kernel}\n`);
    const d = new QemuDriver({ transport: t, runRoot, migrationAddress: '127.0.0.1', accel: 'auto' });
    // Without /dev/kvm (this machine, some sessions) a cached 'kvm' verdict must not be believed.
    assert.equal(await d.acceleration(kernel), kvmUsable() ? opposite : 'tcg');
    const fixed = new QemuDriver({ transport: t, runRoot, migrationAddress: '127.0.0.1', accel: 'tcg' });
    assert.equal(await fixed.acceleration(kernel), 'tcg', 'an explicit setting is never probed');
  });
});
