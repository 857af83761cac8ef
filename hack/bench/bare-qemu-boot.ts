// Baseline of the hypervisor benchmarks: a guest booted by a bare qemu-system-x86_64 (TCG) on this
// machine, no driver, no Transport; the time until its READY line on the serial console.

import { spawn } from 'node:child_process';
import type { DomainSpec } from '../../drivers/hypervisor/types.js';

const READY = /VIRTUALINUX-READY/;

/** Milliseconds from spawning QEMU until the guest prints READY (the spec's kernel, initrd and disks; root qcow2). */
export async function bareQemuBoot(sp: DomainSpec, timeoutMs = 180_000): Promise<number> {
  if (!sp.boot) throw new Error('the bare QEMU baseline boots the guest by kernel');
  const t0 = Date.now();
  const q = spawn('qemu-system-x86_64', [
    '-machine', 'pc', '-accel', 'tcg', '-m', '128M', '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-kernel', sp.boot.kernel, '-initrd', sp.boot.initrd!, '-append', sp.boot.cmdline,
    '-drive', `file=${sp.disks.root.path},format=${sp.disks.root.format},if=virtio`,
    '-drive', `file=${sp.disks.swap!.path},format=raw,if=virtio`,
    '-drive', `file=${sp.disks.config!.path},format=raw,if=virtio,readonly=on`,
    '-serial', 'stdio',
  ], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    return await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`bare QEMU did not print READY in ${timeoutMs / 1000} s`)), timeoutMs);
      q.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        if (READY.test(out)) {
          clearTimeout(timer);
          resolve(Date.now() - t0);
        }
      });
    });
  } finally {
    q.kill('SIGKILL');
  }
}
