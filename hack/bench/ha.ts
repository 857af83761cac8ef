// hack/bench-ha: seconds from the loss of a physical node (hack/testbed fail: sshd and QEMUs
// killed) to every VM it ran being Running on another node, and to each guest's READY line there,
// for VCs of 1 and 4 VMs, with --node-failure-grace 10 and probes every 2 s. Baseline, same run:
// the same VC's first start (apply to every guest READY). Target: Running elsewhere within 30 s.

import { startClusterHarness } from '../lib/cluster-harness.js';
import { failNode, healNode } from '../lib/testbed-faults.js';
import type { PhysicalNode, VirtualNode } from '../../api/types.js';

const GRACE_S = 10;
const SIZES = process.argv.slice(2).map(Number).filter((n) => n > 0);
const sizes = SIZES.length ? SIZES : [1, 4];

const vc = (n: number) => `apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: bench-ha-${n}, namespace: default}
spec:
  nodes: ${n}
  template: busybox
  node: {vcpus: 1, memoryMiB: 128, diskGiB: 1, swapMiB: 16}
  sharedStorage: {sizeGiB: 1, filesystem: none}
  placement: {strategy: Block, mode: Lazy}
  state: Running
`;

async function until(what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main(): Promise<void> {
  const h = await startClusterHarness({
    nodes: 3, cores: 8, memoryMiB: 2048,
    managerArgs: ['--orphan-grace', '5', '--node-failure-grace', String(GRACE_S), '--node-probe-interval', '2'],
    log: (l) => process.stderr.write(`${l}\n`),
  });
  try {
    for (const n of sizes) {
      const name = `bench-ha-${n}`;
      const vms = () => h.store.list<VirtualNode>('VirtualNode', { namespace: 'default' }).then((r) => r.items.filter((v) => v.spec?.cluster === name));
      const ready = async (list: VirtualNode[]) => {
        for (const v of list) if (!(await h.vcctl(['logs', `vn/${v.metadata.name}`])).stdout.includes(`VIRTUALINUX-READY ${v.metadata.name} `)) return false;
        return true;
      };
      const t0 = Date.now();
      const a = await h.vcctl(['apply', '-f', '-'], vc(n));
      if (a.code !== 0) throw new Error(a.stderr);
      await until('first start', async () => { const l = await vms(); return l.length === n && l.every((v) => v.status?.phase === 'Running') && await ready(l); }, 10 * 60_000);
      const firstStart = (Date.now() - t0) / 1000;
      const lost = (await vms())[0]!.spec!.physicalNode!;
      const onLost = (await vms()).filter((v) => v.spec?.physicalNode === lost).map((v) => v.metadata.name);
      const t1 = Date.now();
      await failNode(h.testbed.dir, lost);
      await until('Running elsewhere', async () => {
        const l = (await vms()).filter((v) => onLost.includes(v.metadata.name));
        return l.every((v) => v.status?.phase === 'Running' && v.spec?.physicalNode && v.spec.physicalNode !== lost);
      }, 10 * 60_000);
      const running = (Date.now() - t1) / 1000;
      await until('READY elsewhere', async () => ready((await vms()).filter((v) => onLost.includes(v.metadata.name))), 10 * 60_000);
      const readyS = (Date.now() - t1) / 1000;
      process.stdout.write(`${n} VM(s) on the lost node (${onLost.length}): Running elsewhere ${running.toFixed(1)} s, guest READY ${readyS.toFixed(1)} s after the kill ` +
        `(grace ${GRACE_S} s, probes every 2 s); baseline first start (apply to READY) ${firstStart.toFixed(1)} s; target Running <= 30 s: ${running <= 30 ? 'met' : 'NOT met'}\n`);
      // clean up for the next size: delete the VC, bring the node back and uncordon it
      await h.vcctl(['delete', `vc/${name}`]);
      await until('VC gone', async () => (await vms()).length === 0, 5 * 60_000);
      await healNode(h.testbed.dir, lost);
      await h.vcctl(['uncordon', lost]);
      await until('node back', async () => {
        const c = (await h.store.get<PhysicalNode>({ kind: 'PhysicalNode', name: lost })).status?.conditions ?? [];
        return c.some((x) => x.type === 'Ready' && x.status === 'True') && !c.some((x) => x.type === 'Fenced' && x.status === 'True');
      }, 2 * 60_000);
    }
  } finally {
    await h.stop();
  }
}

main().then(() => process.exit(0), (e: unknown) => { process.stderr.write(`hack/bench-ha: ${(e as Error).message}\n`); process.exit(1); });
