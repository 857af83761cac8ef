// hack/bench-runtime: apply-to-Ready time for VCs of 1, 2, 4 and 8 VMs (how it grows), and the
// share of it spent in placement, storage, network and starting QEMU, read from the VC's condition
// transition times; then until every guest printed its READY marker (polled every 200 ms through
// vcctl logs). Baseline, same run: one guest booted straight through the QEMU driver (no store, no
// controllers) from a fresh snapshot to its READY marker.

import { join } from 'node:path';
import { startClusterHarness } from '../lib/cluster-harness.js';
import { nodeExec } from '../lib/testbed.js';
import type { Condition, PhysicalNode, VirtualCluster } from '../../api/types.js';
import { TransportCache } from '../../drivers/transport/transport-for.js';
import { HypervisorDrivers } from '../../reconcilers/runtime/hosts.js';

const SIZES = (process.argv.slice(2).map(Number).filter((n) => n > 0).length ? process.argv.slice(2).map(Number) : [1, 2, 4, 8]);

const vc = (n: number) => `apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: bench-${n}, namespace: default}
spec:
  nodes: ${n}
  template: busybox
  node: {vcpus: 1, memoryMiB: 128, diskGiB: 1, swapMiB: 16}
  sharedStorage: {sizeGiB: 1, filesystem: none}
  placement: {strategy: Cyclic, mode: Lazy}
  state: Running
`;

function at(conds: Condition[] | undefined, type: string): number {
  const c = conds?.find((x) => x.type === type && x.status === 'True');
  return c ? Date.parse(c.lastTransitionTime) : NaN;
}

async function main(): Promise<void> {
  const h = await startClusterHarness({ nodes: 2, cores: 16, memoryMiB: 8192, log: (l) => process.stderr.write(`${l}\n`) });
  const transports = new TransportCache();
  try {
    // Baseline: one guest, straight through the driver.
    const node = h.testbed.nodes[0]!;
    const pn = await h.store.get<PhysicalNode>({ kind: 'PhysicalNode', name: node.name });
    const driver = new HypervisorDrivers(transports, 'tcg').get(pn);
    const disk = join(h.testbed.sanDir, 'baseline.qcow2');
    await nodeExec(node, ['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', h.image.image, disk]);
    const b0 = Date.now();
    await driver.create({ name: 'bench.baseline', vcpus: 1, memoryMiB: 128, boot: { kernel: h.image.kernel, initrd: h.image.initrd, cmdline: h.image.cmdline }, disks: { root: { path: disk, format: 'qcow2' } } });
    // Without a config disk the guest reports that instead of READY: the end of its boot either way.
    for (;;) {
      const c = await driver.readConsole('bench.baseline');
      if (/VIRTUALINUX-(READY|FAILED)/.test(c.text)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const baseline = Date.now() - b0;
    await driver.destroy('bench.baseline');
    await nodeExec(node, ['rm', '-f', disk]);

    const rows: string[] = [];
    for (const n of SIZES) {
      const t0 = Date.now();
      const a = await h.vcctl(['apply', '-f', '-'], vc(n));
      if (a.code !== 0) throw new Error(a.stderr);
      // When each gate first turned True (polled: a condition may flip again later).
      const first = new Map<string, number>();
      let created = NaN;
      for (;;) {
        const v = await h.store.tryGet<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'default', name: `bench-${n}` });
        if (v) {
          created = Date.parse(v.metadata.creationTimestamp!);
          for (const type of ['Placed', 'StorageReady', 'NetworkReady', 'Ready']) {
            const ts = at(v.status?.conditions, type);
            if (!first.has(type) && !Number.isNaN(ts)) first.set(type, ts);
          }
        }
        if (first.has('Ready')) break;
        if (Date.now() - t0 > 10 * 60_000) throw new Error(`bench-${n} not Ready in 10 minutes`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const total = Date.now() - t0;
      const placed = (first.get('Placed') ?? NaN) - created;
      const storage = (first.get('StorageReady') ?? NaN) - created;
      const network = (first.get('NetworkReady') ?? NaN) - created;
      const start = total - Math.max(placed, storage, network);
      // Ready means every VM's QEMU runs; the guests are usable once each printed its READY marker.
      const pending = new Set(Array.from({ length: n }, (_, i) => `bench-${n}-${i}`));
      while (pending.size > 0) {
        for (const vn of [...pending]) {
          if ((await h.vcctl(['logs', `vn/${vn}`])).stdout.includes(`VIRTUALINUX-READY ${vn} `)) pending.delete(vn);
        }
        if (Date.now() - t0 > 10 * 60_000) throw new Error(`bench-${n}: ${[...pending].join(', ')} printed no READY marker in 10 minutes`);
        if (pending.size > 0) await new Promise((r) => setTimeout(r, 200));
      }
      const usable = Date.now() - t0;
      rows.push(`${String(n).padStart(3)} VMs  apply-to-Ready ${String(total).padStart(6)} ms   placed at ${placed} ms, storage ready at ${storage} ms, network ready at ${network} ms, then QEMU running ${start} ms later; every guest READY at ${usable} ms`);
      process.stderr.write(`${rows[rows.length - 1]}\n`);
      const d = await h.vcctl(['delete', 'vc', `bench-${n}`, '--wait', '--timeout=5m']);
      if (d.code !== 0) throw new Error(d.stderr);
    }
    process.stdout.write(`\nbench-runtime (2 testbed nodes, TCG, 128 MiB guests)\n`);
    process.stdout.write(`baseline: one guest booted straight through the QEMU driver to the end of its boot: ${baseline} ms\n`);
    for (const r of rows) process.stdout.write(`${r}\n`);
  } finally {
    await transports.closeAll();
    await h.stop();
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`bench-runtime failed: ${(e as Error).stack}\n`);
  process.exit(1);
});
