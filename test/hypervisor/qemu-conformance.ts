// What the QEMU driver brings to the conformance suite (driver-conformance.ts), shared by its two
// runs (local nodes, testbed nodes over SSH).

import type { QemuDriver } from '../../drivers/hypervisor/qemu-driver.js';
import type { ConformanceCapabilities } from './driver-conformance.js';

export const qemuCapabilities: ConformanceCapabilities<QemuDriver> = {
  /** Processes on the node, other than QEMU itself, that work on the domain's run directory (e.g. a migration's armed clean-up). */
  helpersLeft: async (d, name) => {
    const r = await d.transport.exec(['pgrep', '-a', '-f', '--', d.paths(name).dir]);
    return r.stdout.split('\n').filter((l) => l.trim() && !/qemu-system/.test(l));
  },
  throttledMigration: true,
  migrationFigures: true,
  leaveIncoming: async (d, spec) => (await d.prepareIncoming(spec)).detach(),
};

/**
 * Whether a process id is alive (and not a zombie) on the driver's node. Its stat is read once: a
 * zombie reaped between a test of the file and its reading was taken for alive (an empty state).
 */
export async function qemuAlive(d: QemuDriver, pid: number): Promise<boolean> {
  return (await d.transport.exec(['sh', '-c', 's=$(sed "s/.*) //" /proc/$1/stat 2>/dev/null | cut -c1); [ -n "$s" ] && [ "$s" != Z ]', 'sh', String(pid)])).code === 0;
}
