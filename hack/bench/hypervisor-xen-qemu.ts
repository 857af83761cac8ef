// QEMU beside Xen on the same full testbed nodes (hack/bench-hypervisor --xen): the runtime's own
// QemuDriver, over each node's SSH transport (the one XenDriver uses), runs the reference guest as
// a QEMU guest inside dom0 (the node image's qemu-system-x86, Debian's). Dom0 has no KVM (the node
// is itself a QEMU TCG machine on this host), so the guest runs under TCG inside TCG: every figure
// below pays for the emulation twice, which a Xen domU (run by the node's TCG once) does not.
// Measured, for the guest the Xen rounds use (1 vCPU, 128 MiB, idle, raw disks on the shared
// directory): boot to READY (create until the READY line in its console log), suspend (state to a
// file on the shared directory) and resume on the other node, and one live migration back over the
// testbed network (QEMU's own downtime and total, our end to end, where it went). Each step is
// bounded; a failure is printed with its reason and the console's tail, and no figure is invented.

import { QemuDriver } from '../../drivers/hypervisor/qemu-driver.js';
import type { DomainSpec, MigrationResult } from '../../drivers/hypervisor/types.js';
import type { Transport } from '../../drivers/transport/types.js';

/** QEMU's run directory on a node's own disk (the shared directory holds only disks and state files). */
const RUN_ROOT = '/var/lib/virtualinux/qemu';
const READY = /VIRTUALINUX-READY/;
const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

export interface QemuNode {
  transport: Transport;
  /** The node's testbed address: the migration target listens on it. */
  address: string;
}

export interface QemuBesideXenLimits {
  /** create until READY; default 1 800 000 ms (TCG inside TCG: 965-985 s at load 2-11, session 15). */
  bootMs?: number;
  /** The live migration's transfer, cancelled after it; default 900 000 ms. */
  migrationMs?: number;
}

/** What one QEMU round measured; a step that failed has its message instead of its figures. */
export interface QemuBesideXen {
  version: string;
  bootMs?: number;
  suspendMs?: number;
  stateWrittenMs?: number;
  stateBytes?: number;
  resumeMs?: number;
  migration?: MigrationResult;
  failed?: { step: string; message: string };
}

export function qemuDriverOn(n: QemuNode): QemuDriver {
  // accel tcg: dom0 has no /dev/kvm (checked and printed below), so no KVM probe boot either
  return new QemuDriver({ transport: n.transport, runRoot: RUN_ROOT, migrationAddress: n.address, accel: 'tcg' });
}

/**
 * Boots `spec` with QemuDriver on node a, suspends it there, resumes it on b, live-migrates it back
 * to a, and destroys it on both; prints one line per step, each starting with `QEMU`.
 */
export async function qemuBesideXen(na: QemuNode, nb: QemuNode, spec: DomainSpec, limits: QemuBesideXenLimits = {}): Promise<QemuBesideXen> {
  const a = qemuDriverOn(na);
  const b = qemuDriverOn(nb);
  const bootMs = limits.bootMs ?? 1_800_000;
  const out: QemuBesideXen = { version: '' };
  const ver = await a.transport.exec(['qemu-system-x86_64', '--version']);
  out.version = ver.code === 0 ? ver.stdout.split('\n')[0]!.trim() : `none (${ver.stderr.trim() || `exit ${ver.code}`})`;
  const kvm = await a.transport.exec(['test', '-e', '/dev/kvm']);
  console.log(`QEMU on the same nodes: QemuDriver (the runtime's) over the nodes' SSH, ${out.version} in dom0, accel TCG (dom0 has ${kvm.code === 0 ? 'a' : 'no'} /dev/kvm): a TCG guest inside a TCG dom0 (TCG inside TCG: emulated twice), ${spec.vcpus} vCPU / ${spec.memoryMiB} MiB, idle`);
  if (ver.code !== 0) {
    out.failed = { step: 'qemu-system-x86_64 in dom0', message: out.version };
    console.log(`QEMU: not measured: no qemu-system-x86_64 in dom0 (${out.version}); rebuild the node image (hack/node-image build)`);
    return out;
  }
  const tail = async (d: QemuDriver): Promise<string> => {
    const c = await d.readConsole(spec.name).catch(() => undefined);
    return c ? c.text.slice(-600).replace(/\s+/g, ' ').trim() : '(no console log)';
  };
  let step = 'boot';
  try {
    const t0 = Date.now();
    await a.create(spec);
    await a.waitForConsole(spec.name, READY, bootMs);
    out.bootMs = Date.now() - t0;
    console.log(`QEMU (TCG inside TCG) boot to READY on ${a.node}: ${s(out.bootMs)}`);

    step = 'suspend';
    const file = `${spec.disks.root.path.slice(0, spec.disks.root.path.lastIndexOf('/'))}/qemu-state.bin`;
    const ts = Date.now();
    const sus = await a.suspend(spec.name, file);
    out.suspendMs = Date.now() - ts;
    out.stateWrittenMs = sus.durationMs;
    out.stateBytes = sus.bytes;
    step = 'resume';
    const tr = Date.now();
    await b.resume(spec, file);
    out.resumeMs = Date.now() - tr;
    console.log(`QEMU (TCG inside TCG) suspend on ${a.node} ${s(out.suspendMs)} (QEMU wrote the state in ${s(sus.durationMs)}, ${(sus.bytes / 2 ** 20).toFixed(1)} MiB, into the shared directory); resume on ${b.node} ${s(out.resumeMs)}`);

    step = 'live migration';
    const r = await b.migrate(spec.name, a, { downtimeLimitMs: 300, timeoutMs: limits.migrationMs ?? 900_000 });
    out.migration = r;
    const ph = r.phasesMs;
    console.log(`QEMU (TCG inside TCG) live migration ${b.node} -> ${a.node} over the testbed network (tcp, migrate() in one call): ${(r.transferredBytes / 2 ** 20).toFixed(1)} MiB, QEMU's own downtime ${r.downtimeMs} ms, QEMU's own total ${s(r.totalMs)}, ours end to end ${s(r.endToEndMs)}${ph ? ` (prepare, the target QEMU started: ${s(ph.prepare)}; transfer ${s(ph.transfer)}; switchover to running on ${a.node} ${s(ph.switchover)}; clean-up ${s(ph.cleanup)})` : ''}`);
    step = 'destroy';
    await a.destroy(spec.name);
  } catch (e) {
    out.failed = { step, message: (e as Error).message };
    console.log(`QEMU (TCG inside TCG) ${step}: FAILED: ${(e as Error).message}; console on ${a.node}: ${await tail(a)}; on ${b.node}: ${await tail(b)}`);
  } finally {
    for (const d of [a, b]) await d.destroy(spec.name).catch(() => undefined);
  }
  return out;
}
