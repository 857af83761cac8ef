// hack/bench-store: `vcctl apply` of N VirtualClusters (default 1,000, 2 VMs each) and the time
// until a real vc-manager (VirtualCluster and placement controllers) has them all Placed, on a
// 3-member etcd cluster and, as the baseline in the same run, on a 1-member cluster made the same
// way (hack/lib/etcd-cluster.ts: TLS, client certificates, etcd auth, a network namespace per
// member). The difference is what replication across members costs this workload.
//
// usage: hack/bench-store [--vcs N] [--members 1,3]
// (--members: the cluster sizes to run, in order; the ratio is printed when both 1 and 3 ran.
// VL_BENCH_PROF_DIR=DIR: the vc-manager writes a V8 CPU profile there, for finding what is slow.)

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { openStore } from '../../api/store/open-store.js';
import { API_VERSION, type PhysicalNode, type VirtualCluster } from '../../api/types.js';
import { main as vcctlMain } from '../../cli/vcctl.js';
import { etcdClusterDown, etcdClusterUp } from '../lib/etcd-cluster.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const NODES = 20;

interface Result { members: number; applyMs: number; placedMs: number }

function manifests(vcs: number): string {
  const docs: object[] = [];
  for (let i = 1; i <= NODES; i++) {
    docs.push({
      apiVersion: API_VERSION, kind: 'PhysicalNode', metadata: { name: `blade${i}` },
      spec: {
        address: `198.51.100.${i}`, ssh: { port: 22, user: 'root', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOZ0' },
        capacity: { cores: 256, memoryMiB: 1 << 20 }, maxVMs: 1000, hypervisor: 'qemu', storageRoot: '/san',
      },
    } satisfies PhysicalNode);
  }
  for (let i = 0; i < vcs; i++) {
    docs.push({
      apiVersion: API_VERSION, kind: 'VirtualCluster', metadata: { name: `vc${i}`, namespace: 'bench' },
      spec: {
        nodes: 2, template: 'busybox', node: { vcpus: 1, memoryMiB: 256, diskGiB: 1, swapMiB: 0 },
        placement: { strategy: i % 2 ? 'Cyclic' : 'Block', mode: 'Strict' }, state: 'Running',
      },
    } satisfies VirtualCluster);
  }
  return docs.map((d) => toYaml(d)).join('---\n');
}

async function vcctl(args: string[], url: string): Promise<void> {
  const err = new PassThrough();
  let e = '';
  err.on('data', (d: Buffer) => (e += d.toString()));
  const code = await vcctlMain(args, { stdout: new PassThrough().resume(), stderr: err, stdin: Readable.from(['']), env: { ...process.env, VCCTL_STORE: url } });
  if (code !== 0) throw new Error(`vcctl ${args.join(' ')}: ${e}`);
}

async function run(members: number, vcs: number, file: string): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), `vl-bench-store-${members}-`));
  let manager: ChildProcess | undefined;
  try {
    const s = await etcdClusterUp({ dir, members });
    const url = readFileSync(s.storeUrlFile, 'utf8').trim();
    const store = await openStore(url);
    // The PhysicalNodes first, Ready as the nodes controller would report them (no hosts here).
    await vcctl(['apply', '-f', file.replace(/\.yaml$/, '-nodes.yaml')], url);
    for (const pn of (await store.list<PhysicalNode>('PhysicalNode')).items) {
      await store.updateStatus({ ...pn, status: { conditions: [{ type: 'Ready', status: 'True', reason: 'Probed', message: '', lastTransitionTime: new Date().toISOString(), observedGeneration: 1 }] } });
    }
    manager = spawn(process.execPath, [...(process.env.VL_BENCH_PROF_DIR ? ['--cpu-prof', '--cpu-prof-dir', process.env.VL_BENCH_PROF_DIR] : []), '--import', 'tsx', join(ROOT, 'operator/vc-manager.ts'), '--store', url, '--identity', 'bench',
      '--metrics-addr', '127.0.0.1:0', '--controllers', 'virtualcluster,placement', '--log-level', 'error'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
    await new Promise((r) => setTimeout(r, 8000)); // the manager leads and its caches are synced
    // Placed is counted from a watch on the VCs (started before the apply), not by listing all of
    // them again and again: a poll of 1,000 VCs would load the store the benchmark measures.
    const isPlaced = (vc: VirtualCluster) => vc.status?.conditions?.some((c) => c.type === 'Placed' && c.status === 'True') ?? false;
    const placed = new Set<string>();
    let watchError: Error | undefined;
    let allPlaced!: () => void;
    const done = new Promise<void>((r) => (allPlaced = r));
    const watch = store.watch<VirtualCluster>('VirtualCluster', { namespace: 'bench', fromRevision: (await store.revision()) + 1 }, {
      onEvent: (ev) => {
        if (ev.type !== 'DELETED' && isPlaced(ev.object)) placed.add(ev.object.metadata.name);
        else placed.delete(ev.object.metadata.name);
        if (placed.size === vcs) allPlaced();
      },
      onError: (err) => (watchError = err),
    });
    const t0 = performance.now();
    await vcctl(['apply', '-f', file], url);
    const applyMs = performance.now() - t0;
    let lastReport = t0;
    for (;;) {
      const tick = await Promise.race([done.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 1000))]);
      if (tick) break;
      if (watchError) throw new Error(`watch on the VirtualClusters ended: ${watchError.message}`);
      if (manager.exitCode !== null) throw new Error(`vc-manager exited ${manager.exitCode}`);
      if (performance.now() - lastReport > 30_000) {
        lastReport = performance.now();
        process.stderr.write(`  ${members} member(s): ${placed.size} of ${vcs} Placed after ${((lastReport - t0) / 1000).toFixed(0)} s\n`);
      }
      if (performance.now() - t0 > 15 * 60_000) throw new Error(`only ${placed.size} of ${vcs} Placed after 15 minutes`);
    }
    const placedMs = performance.now() - t0;
    watch.close();
    // What the watch said, checked against a fresh list.
    const listed = (await store.list<VirtualCluster>('VirtualCluster', { namespace: 'bench' })).items.filter(isPlaced).length;
    if (listed !== vcs) throw new Error(`the watch saw all ${vcs} VCs Placed, a list shows ${listed}`);
    await store.close();
    return { members, applyMs, placedMs };
  } finally {
    if (manager && manager.exitCode === null) {
      const gone = new Promise((r) => manager!.once('exit', r));
      manager.kill('SIGTERM');
      await gone;
    }
    await etcdClusterDown(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { vcs: { type: 'string', default: '1000' }, members: { type: 'string', default: '1,3' } } });
  const memberCounts = values.members.split(',').map(Number);
  if (memberCounts.some((m) => !Number.isInteger(m) || m < 1)) throw new Error(`--members must list positive integers, got ${values.members}`);
  const vcs = Number(values.vcs);
  if (!Number.isInteger(vcs) || vcs < 1) throw new Error(`--vcs must be a positive integer, got ${values.vcs}`);
  const work = mkdtempSync(join(tmpdir(), 'vl-bench-store-'));
  const file = join(work, 'vcs.yaml');
  const all = manifests(vcs).split('---\n');
  writeFileSync(file.replace(/\.yaml$/, '-nodes.yaml'), all.slice(0, NODES).join('---\n'));
  writeFileSync(file, all.slice(NODES).join('---\n'));
  try {
    const results: Result[] = [];
    for (const members of memberCounts) {
      const r = await run(members, vcs, file);
      results.push(r);
      process.stdout.write(`${members} member${members > 1 ? 's' : ' '}: vcctl apply of ${vcs} VCs ${(r.applyMs / 1000).toFixed(2)} s; ` +
        `all ${vcs} Placed (${2 * vcs} VMs bound) ${(r.placedMs / 1000).toFixed(2)} s after the apply began\n`);
    }
    const one = results.find((r) => r.members === 1);
    const three = results.find((r) => r.members === 3);
    if (one && three) process.stdout.write(`3 members vs 1 (baseline, same run): apply x${(three.applyMs / one.applyMs).toFixed(2)}, until all Placed x${(three.placedMs / one.placedMs).toFixed(2)}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`hack/bench-store: ${(err as Error).message}\n`);
  process.exit(1);
});
