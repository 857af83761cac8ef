// The demo (README's first command): the paper's "stripes" VC on a testbed of three physical
// nodes — created from YAML, running real QEMU guests, one VM live-migrated, the whole VC
// suspended to disk and resumed — then everything removed. Each step prints the vcctl command it
// runs and what it shows. `--xen`: the same story on two full Xen nodes (xenStory below).

import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startClusterHarness, type ClusterHarness } from './cluster-harness.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const t0 = Date.now();
const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s]`;
const say = (line: string) => process.stdout.write(`${stamp()} ${line}\n`);

async function step(h: ClusterHarness, args: string[], stdin?: string): Promise<string> {
  say(`$ vcctl ${args.join(' ')}`);
  const r = await h.vcctl(args, stdin);
  const text = (r.stdout + r.stderr).trimEnd();
  if (text) process.stdout.write(text.replace(/^/gm, '    ') + '\n');
  if (r.code !== 0) throw new Error(`vcctl ${args.join(' ')} exited ${r.code}`);
  return r.stdout;
}

async function main(): Promise<void> {
  let h: ClusterHarness | undefined;
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    say('tearing down: VMs, vc-manager, testbed');
    await h?.stop();
    say('done: nothing left behind');
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    // `hack/demo --etcd`: the same on a 3-member etcd cluster (hack/etcd-cluster) instead of the embedded store.
    const etcd = process.argv.slice(2).includes('--etcd');
    if (process.argv.slice(2).includes('--xen')) {
      // a Xen live migration under TCG takes minutes: the manager's limit is raised from 120 s
      h = await startClusterHarness({ nodes: 2, full: true, log: (l) => say(l), store: etcd ? 'etcd-cluster' : 'embedded', managerArgs: ['--migration-timeout', '1200'] });
      await xenStory(h);
      return;
    }
    h = await startClusterHarness({ nodes: 3, cores: 2, memoryMiB: 2048, log: (l) => say(l), store: etcd ? 'etcd-cluster' : 'embedded' });
    await step(h, ['get', 'pn', '-o', 'wide']);

    say('creating the "stripes" virtual cluster: original volume, 4 copy-on-write snapshots, swap, first-boot config, placement, routes');
    await step(h, ['apply', '-f', '-'], readFileSync(join(ROOT, 'manifests/demo/stripes.yaml'), 'utf8'));
    await step(h, ['wait', 'vc/stripes', '--for=condition=Ready', '--timeout=8m']);
    await step(h, ['get', 'vc,vn,pn', '-o', 'wide']);
    for (let i = 0; i < 4; i++) {
      const deadline = Date.now() + 120_000;
      let log = '';
      while (!/VIRTUALINUX-READY/.test(log) && Date.now() < deadline) {
        log = (await h.vcctl(['logs', `vn/stripes-${i}`])).stdout;
        if (!/VIRTUALINUX-READY/.test(log)) await new Promise((r) => setTimeout(r, 1000));
      }
      say(`vcctl logs vn/stripes-${i}: ${log.trim().split('\n').filter((l) => /hello from|shared storage:|VIRTUALINUX-READY/.test(l)).join(' | ')}`);
    }

    const vn = JSON.parse(await h.vcctl(['get', 'vn/stripes-1', '-o', 'json']).then((r) => r.stdout)) as { spec: { physicalNode: string } };
    const nodes = h.testbed.nodes.map((n) => n.name);
    const target = nodes.find((n) => n !== vn.spec.physicalNode)!;
    say(`live-migrating stripes-1 from ${vn.spec.physicalNode} to ${target}`);
    await step(h, ['migrate', 'vn/stripes-1', '--to', target, '--wait', '--timeout=5m']);
    await step(h, ['get', 'vn', '-o', 'wide']);

    say('suspending the whole VC to the storage root');
    await step(h, ['suspend', 'vc/stripes', '--wait', '--timeout=5m']);
    await step(h, ['get', 'vc,vn']);
    say('resuming it');
    await step(h, ['resume', 'vc/stripes', '--wait', '--timeout=5m']);
    await step(h, ['get', 'vc,vn,pn', '-o', 'wide']);
    await step(h, ['events']);

    say('deleting the VC: domains, routes, rules and volumes go');
    await step(h, ['delete', 'vc', 'stripes', '--wait', '--timeout=5m']);
  } finally {
    await stop();
  }
}

/** A VC of two PVH domUs on the two full Xen nodes of `hack/demo --xen`. */
const xenPair = (strategy: 'Cyclic' | 'Block') => `apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: pair, namespace: default}
spec:
  nodes: 2
  template: busybox
  hypervisor: xen
  node: {vcpus: 1, memoryMiB: 128, diskGiB: 1, swapMiB: 32}
  sharedStorage: {sizeGiB: 1, filesystem: none}
  placement: {strategy: ${strategy}, mode: Lazy}
  state: Running
  firstBoot: {script: "echo hello from $VC_NODE_NAME on Xen"}
`;

async function readyLines(h: ClusterHarness, names: string[]): Promise<void> {
  for (const name of names) {
    const deadline = Date.now() + 300_000;
    let log = '';
    while (!/VIRTUALINUX-READY/.test(log) && Date.now() < deadline) {
      log = (await h.vcctl(['logs', `vn/${name}`])).stdout;
      if (!/VIRTUALINUX-READY/.test(log)) await new Promise((r) => setTimeout(r, 3000));
    }
    say(`vcctl logs vn/${name}: ${log.trim().split('\n').filter((l) => /hello from|VIRTUALINUX-READY/.test(l)).join(' | ')}`);
  }
}

/**
 * `hack/demo --xen`: the story on two full testbed nodes (QEMU TCG machines running Xen 4.17 and a
 * Debian dom0): a VC of two PVH domUs created and Ready, one live-migrated (xl migrate over our
 * pinned SSH; a failure is shown with its reason and the VM still on its node), then the VC
 * suspended to the shared directory and resumed with one VM on the other node, and deleted.
 */
async function xenStory(h: ClusterHarness): Promise<void> {
  await step(h, ['get', 'pn', '-o', 'wide']);
  say('creating the "pair" virtual cluster on the Xen nodes: 2 PVH domUs, one per node (each boots in minutes under TCG)');
  await step(h, ['apply', '-f', '-'], xenPair('Cyclic'));
  await step(h, ['wait', 'vc/pair', '--for=condition=Ready', '--timeout=25m']);
  await step(h, ['get', 'vc,vn,pn', '-o', 'wide']);
  await readyLines(h, ['pair-0', 'pair-1']);

  const [a, b] = h.testbed.nodes.map((n) => n.name);
  say(`live-migrating pair-1 from ${b} to ${a} (xl migrate over our pinned SSH; minutes under TCG)`);
  const m = await h.vcctl(['migrate', 'vn/pair-1', '--to', a!, '--wait', '--timeout=20m']);
  process.stdout.write((m.stdout + m.stderr).trimEnd().replace(/^/gm, '    ') + '\n');
  if (m.code === 0) {
    await step(h, ['get', 'vn', '-o', 'wide']);
  } else {
    say('NOT live-migrated (the reason is in the message above); pair-1 keeps running where it was');
    await step(h, ['get', 'vn', '-o', 'wide']);
  }

  say('suspending the whole VC to the shared directory (xl save)');
  await step(h, ['suspend', 'vc/pair', '--wait', '--timeout=15m']);
  await step(h, ['get', 'vc,vn']);
  const where = JSON.parse((await h.vcctl(['get', 'vn/pair-1', '-o', 'json'])).stdout) as { spec: { physicalNode: string } };
  const strategy = where.spec.physicalNode === a ? 'Cyclic' : 'Block';
  say(`changing the placement to ${strategy} while suspended: pair-1 resumes on ${where.spec.physicalNode === a ? b : a} (xl restore on another node)`);
  await step(h, ['apply', '-f', '-'], xenPair(strategy));
  await step(h, ['resume', 'vc/pair', '--wait', '--timeout=15m']);
  await step(h, ['get', 'vc,vn,pn', '-o', 'wide']);
  await step(h, ['events']);

  say('deleting the VC: domains, vifs, routes, rules and volumes go');
  await step(h, ['delete', 'vc', 'pair', '--wait', '--timeout=10m']);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${stamp()} demo failed: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
