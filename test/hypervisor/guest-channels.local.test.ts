// The QEMU driver's guest channels with the real reference guest on this machine (LocalTransport):
// the guest agent answering over virtio-serial once the guest is up, the interactive serial console
// (a root shell: a typed command runs; one attachment at a time, --force takes over), and a guest
// booted by the firmware through the boot loader installed in its image (no kernel given).

import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { QemuDriver } from '../../drivers/hypervisor/qemu-driver.js';
import { ConsoleBusyError, type ConsoleSession, type DomainSpec } from '../../drivers/hypervisor/types.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { guestEnv, makeNodeDisks, referenceGuest } from './node-disks.js';

const READY = 120_000;

/** Collects what a console session prints; `until(re)` waits for it to appear. */
function collect(s: ConsoleSession): { text: () => string; until: (re: RegExp, ms?: number) => Promise<string> } {
  let text = '';
  s.output.on('data', (b: Buffer) => (text += b.toString('latin1')));
  return {
    text: () => text,
    until: async (re, ms = 30_000) => {
      const deadline = Date.now() + ms;
      while (!re.test(text)) {
        if (Date.now() > deadline) throw new Error(`console did not show ${re} within ${ms} ms; got: ${JSON.stringify(text.slice(-300))}`);
        await sleep(100);
      }
      return text;
    },
  };
}

describe('QemuDriver guest channels (real guest, LocalTransport)', function () {
  this.timeout(300_000);
  let dir: string;
  let d: QemuDriver;
  const started: string[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vc-chan-'));
    d = new QemuDriver({ transport: new LocalTransport({ host: 'chan' }), runRoot: join(dir, 'run'), migrationAddress: '127.0.0.1', accel: 'tcg' });
  });
  after(async () => {
    for (const n of started) await d.destroy(n).catch(() => undefined);
    await d.transport.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function spec(name: string, node: string, ip: string, bootloader = false): DomainSpec {
    const g = referenceGuest();
    const disks = makeNodeDisks(join(dir, node), guestEnv(node, ip));
    if (bootloader) {
      rmSync(disks.root);
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', g.bootloaderImage, disks.root]);
    }
    return {
      name, vcpus: 1, memoryMiB: 192,
      boot: bootloader ? undefined : { kernel: g.kernel, initrd: g.initrd, cmdline: g.cmdline },
      disks: { root: { path: disks.root, format: 'qcow2' }, swap: { path: disks.swap, format: 'raw' }, config: { path: disks.config, format: 'raw', readOnly: true } },
    };
  }

  it('the agent answers only once the guest is up; the serial console is a root shell, one attachment at a time', async () => {
    const name = 'test.chan-0';
    await d.create(spec(name, 'chan-0', '198.19.7.2'));
    started.push(name);
    // Early in the boot nothing answers yet (the agent starts after READY).
    const early = await d.pingGuestAgent(name, 300);
    const readyLine = await d.waitForConsole(name, /VIRTUALINUX-READY chan-0 198\.19\.7\.2/, READY);
    assert.ok(readyLine);
    let reply;
    for (let i = 0; i < 40 && !reply; i++) reply = await d.pingGuestAgent(name, 1_500);
    assert.ok(reply, 'the agent answered after READY');
    assert.equal(reply.node, 'chan-0');
    assert.equal(reply.ip, '198.19.7.2');
    assert.ok(reply.uptimeSeconds > 0);
    assert.equal(early, undefined, 'no answer before the guest was up');
    // A second ping on a new connection works too (the channel is free again).
    assert.equal((await d.pingGuestAgent(name, 3_000))?.node, 'chan-0');

    const s1 = await d.attachConsole(name);
    const out1 = collect(s1);
    s1.input.write('\n');
    s1.input.write('echo "answer-$((6 * 7))"; hostname\n');
    await out1.until(/answer-42[\s\S]*chan-0/);

    await assert.rejects(d.attachConsole(name), ConsoleBusyError, 'a second attach is refused');
    const s2 = await d.attachConsole(name, { force: true });
    await s1.done; // the first session was ended by the takeover
    const out2 = collect(s2);
    s2.input.write('echo "second-$((2 + 3))"\n');
    await out2.until(/second-5/);
    s2.close();
    await s2.done;
    // Detached: the console is free, and the guest still runs.
    const s3 = await d.attachConsole(name);
    const out3 = collect(s3);
    s3.input.write('echo "third-$((3 * 3))"\n');
    await out3.until(/third-9/);
    s3.close();
    await s3.done;
    assert.equal((await d.get(name))?.state, 'running');
    // What was typed and printed is in the console log as well.
    assert.match((await d.readConsole(name)).text, /second-5/);
  });

  it('boots an image by its own boot loader (no kernel given) to READY, and its agent answers', async () => {
    const name = 'test.chan-boot';
    const sp = spec(name, 'chan-boot', '198.19.7.3', true);
    assert.equal(sp.boot, undefined);
    await d.create(sp);
    started.push(name);
    const text = await d.waitForConsole(name, /VIRTUALINUX-READY chan-boot 198\.19\.7\.3/, READY);
    assert.ok(text);
    assert.match((await d.readConsole(name)).text, /SYSLINUX|EXTLINUX/, 'the boot loader in the image ran');
    let reply;
    for (let i = 0; i < 40 && !reply; i++) reply = await d.pingGuestAgent(name, 1_500);
    assert.equal(reply?.node, 'chan-boot');
  });
});
