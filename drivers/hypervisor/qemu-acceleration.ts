// Acceleration `auto` for QemuDriver: boots the guest kernel under KVM once per node (a root-less
// boot must reach the kernel's "Kernel panic ... mount root" within a timeout, its early console
// speaking within a few seconds) and falls back to TCG otherwise; the verdict is cached in memory
// and in `<runRoot>/.accel` for the host's boot (boot_id), with the kernel that proved it.

import { execOk, type Transport } from '../transport/types.js';
import type { Acceleration } from './qemu-argv.js';

export interface AccelerationProbeOptions {
  transport: Transport;
  /** The node's run directory: the verdict is cached in `<runRoot>/.accel`. */
  runRoot: string;
  qemu: string;
  mode: 'auto' | Acceleration;
  /** How long the KVM boot check may take. */
  probeTimeoutMs: number;
  /** A KVM guest whose early console stays mute this long hangs: the check gives up then. */
  firstOutputMs: number;
}

/** One node's acceleration verdict: concurrent callers share one probe; a failed probe is retried. */
export class AccelerationProbe {
  private pending?: Promise<Acceleration>;

  constructor(private readonly o: AccelerationProbeOptions) {}

  /**
   * KVM when it is usable here (real boot check), else TCG; cached per node. The check boots a
   * kernel: a firmware-booted domain (no kernel) takes the node's last verdict, and TCG when KVM
   * was never proven here.
   */
  acceleration(kernel: string | undefined): Promise<Acceleration> {
    if (this.o.mode !== 'auto') return Promise.resolve(this.o.mode);
    if (kernel === undefined) return this.pending ?? this.lastAcceleration();
    this.pending ??= this.probe(kernel).catch((e) => {
      this.pending = undefined;
      throw e;
    });
    return this.pending;
  }

  /** The node's cached verdict for this boot of the host (whatever kernel proved it), else TCG. */
  private async lastAcceleration(): Promise<Acceleration> {
    const [kvmLine, bootId, cached] = await this.accelInfo();
    const m = /^(kvm|tcg) (\S+) /.exec(cached ?? '');
    return kvmLine === 'kvm=yes' && m?.[1] === 'kvm' && m[2] === bootId ? 'kvm' : 'tcg';
  }

  /** [kvm=yes|kvm=no, the host's boot id, the cached verdict line of `<runRoot>/.accel`]. */
  private async accelInfo(): Promise<string[]> {
    const info = await execOk(this.o.transport, ['sh', '-c',
      'test -w /dev/kvm && echo kvm=yes || echo kvm=no; cat /proc/sys/kernel/random/boot_id; cat "$1" 2>/dev/null || true',
      'sh', `${this.o.runRoot}/.accel`]);
    return info.split('\n');
  }

  private async probe(kernel: string): Promise<Acceleration> {
    const cacheFile = `${this.o.runRoot}/.accel`;
    const [kvmLine, bootId, cached] = await this.accelInfo();
    if (kvmLine !== 'kvm=yes') return 'tcg';
    const m = /^(kvm|tcg) (\S+) (.*)$/.exec(cached ?? '');
    if (m && m[2] === bootId && m[3] === kernel) return m[1] as Acceleration;
    const secs = Math.max(1, Math.ceil(this.o.probeTimeoutMs / 1000));
    // A root-less boot: a working KVM reaches the kernel's panic about the missing root in about a
    // second; a broken one (nested KVM here) hangs silently, seen when the early console stays mute.
    const proc = this.o.transport.spawn([
      'timeout', '-s', 'KILL', String(secs), this.o.qemu, '-accel', 'kvm', '-cpu', 'host', '-machine', 'pc', '-m', '128',
      '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-serial', 'stdio',
      '-kernel', kernel, '-append', 'console=ttyS0 earlycon=uart8250,io,0x3f8,115200 panic=-1 root=/dev/vc-kvm-probe',
    ], { timeoutMs: (secs + 10) * 1000 });
    proc.stderr.resume();
    const result = await new Promise<Acceleration>((resolve) => {
      const PANIC = /Kernel panic|Unable to mount root|VFS: Cannot open root/;
      let out = '';
      let settled = false;
      const finish = (r: Acceleration): void => {
        if (settled) return;
        settled = true;
        clearTimeout(mute);
        proc.kill();
        resolve(r);
      };
      const mute = setTimeout(() => finish('tcg'), this.o.firstOutputMs);
      proc.stdout.on('data', (b: Buffer) => {
        clearTimeout(mute);
        out += b.toString('latin1');
        if (PANIC.test(out)) finish('kvm');
      });
      // The process ended by itself (timeout's KILL, or QEMU quit after the panic): judge all it printed.
      proc.stdout.on('end', () => finish(PANIC.test(out) ? 'kvm' : 'tcg'));
      proc.done.catch(() => finish('tcg'));
    });
    await proc.done.catch(() => undefined);
    await execOk(this.o.transport, ['mkdir', '-p', this.o.runRoot]);
    await this.o.transport.writeFile(cacheFile, `${result} ${bootId} ${kernel}\n`);
    return result;
  }
}
