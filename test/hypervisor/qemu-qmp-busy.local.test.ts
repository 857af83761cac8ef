// QemuDriver with its QMP control socket busy. QEMU serves one QMP client at a time: while one is
// connected, the kernel queues two more connects and refuses the next at once (EAGAIN). The
// runtime's polls, the orphan scan and a shutdown all open that socket, so a refused connect is
// normal; it must not turn an ACPI shutdown into a wait for the whole timeout and a kill (what the
// operations end-to-end test saw: "the guest did not power off in time and was destroyed").
// One real guest (reference image, TCG) on this machine through LocalTransport.

import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { QemuDriver } from '../../drivers/hypervisor/qemu-driver.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { guestEnv, makeNodeDisks, referenceGuest } from './node-disks.js';

/** Connects to a unix socket; resolves once connected (queued in the backlog counts), rejects on refusal. */
function occupy(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection({ path });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

describe('QemuDriver: a busy QMP control socket', function () {
  this.timeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'vc-qmp-busy-'));
  const transport = new LocalTransport({ host: 'local' });
  const d = new QemuDriver({ transport, runRoot: join(dir, 'run'), migrationAddress: '127.0.0.1', accel: 'tcg' });
  const name = 'test.busy-0';
  const held: net.Socket[] = [];

  after(async () => {
    for (const s of held) s.destroy();
    await d.destroy(name).catch(() => undefined);
    await transport.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a shutdown asked while other clients hold the socket still powers the guest off through ACPI', async () => {
    const g = referenceGuest();
    const disks = makeNodeDisks(join(dir, 'san'), guestEnv('busy-0', '198.19.7.9'));
    await d.create({
      name, vcpus: 1, memoryMiB: 128,
      boot: { kernel: g.kernel, initrd: g.initrd, cmdline: g.cmdline },
      disks: {
        root: { path: disks.root, format: 'qcow2' },
        swap: { path: disks.swap, format: 'raw' },
        config: { path: disks.config, format: 'raw', readOnly: true },
      },
    });
    const deadline = Date.now() + 240_000;
    while (!/VIRTUALINUX-READY busy-0/.test((await d.readConsole(name)).text)) {
      assert.ok(Date.now() < deadline, 'the guest did not boot to READY');
      await sleep(500);
    }
    // One client connected (QEMU serves it) and the backlog filled, until a further connect is refused.
    const ctl = d.paths(name).ctlSocket;
    for (;;) {
      try {
        held.push(await occupy(ctl));
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'EAGAIN', 'the socket refuses a client beyond its backlog');
        break;
      }
      assert.ok(held.length < 10, 'the QMP socket kept accepting clients');
    }
    // The holders leave a moment after the shutdown was asked (as a poll's connection would).
    const release = sleep(1_000).then(() => { for (const s of held) s.destroy(); });
    const r = await d.shutdown(name, { timeoutMs: 60_000 });
    await release;
    assert.equal(r.clean, true, 'the guest powered off by itself, not killed after the timeout');
    assert.match((await d.readConsole(name)).text, /reboot: Power down/);
    assert.equal((await d.get(name))?.state, 'shutoff');
  });
});
