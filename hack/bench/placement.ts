// hack/bench-placement: the placement engine and the persisting of its bindings, measured.
//
// 1. Engine: 10,000 mixed nodes, 100,000 VMs in VCs of mixed sizes, each strategy x mode
//    (target: under 1 s for all 100,000). Baseline in the same run: the naive first-fit
//    (scan the node order for every VM, API.md read literally) on the same problem; both must
//    place the same number of VMs.
// 2. Persisting (when an etcd can be started; see persistBench): the bindings of the Block/Strict
//    placement written through the Store's batch against a bare etcd3 batched transaction loop
//    of the same size in the same run (target ratio >= 0.5).
// 3. Allocation (with 2): the placement/allocation controller freeing a deleted VM's room from its
//    informer caches against listing every VM from the store per node, and a resync's cheap
//    check by its by-node index against one pass over every VM (see placement-allocation.ts).
//
// usage: hack/bench-placement [--nodes N] [--vms N] [--persist-vms N] [--no-etcd]

import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { PlacementMode, PlacementStrategy } from '../../api/types.js';
import {
  compareNodeNames, placeClusters, type ClusterRequest, type NodeCapacity,
} from '../../reconcilers/placement/engine.js';
import { makeClusters, makeNodes } from './placement-workload.js';

const COMBOS: [PlacementStrategy, PlacementMode][] = [
  ['Block', 'Strict'], ['Block', 'Lazy'], ['Cyclic', 'Strict'], ['Cyclic', 'Lazy'],
];

/** API.md read literally: every VM scans the node order from the start (or round-robin). */
function naivePlaceAll(nodes: readonly NodeCapacity[], clusters: readonly ClusterRequest[]): number {
  const order = [...nodes].sort((a, b) => compareNodeNames(a.name, b.name));
  const used = order.map((n) => ({ ...n.used }));
  let placed = 0;
  for (const c of clusters) {
    const fits = (i: number): boolean => {
      const n = order[i]!;
      const u = used[i]!;
      return (n.maxVMs === undefined || u.vms < n.maxVMs)
        && c.memoryMiB <= n.memoryMiB - u.memoryMiB
        && (c.mode === 'Lazy' || c.vcpus <= n.cores - u.cores);
    };
    const mine: number[] = [];
    let p = 0;
    for (let vm = 0; vm < c.vms; vm++) {
      let chosen = -1;
      for (let s = 0; s < order.length && chosen < 0; s++) {
        const i = c.strategy === 'Block' ? s : (p + s) % order.length;
        if (fits(i)) chosen = i;
      }
      if (chosen < 0) break;
      mine.push(chosen);
      used[chosen]!.vms++;
      used[chosen]!.cores += c.vcpus;
      used[chosen]!.memoryMiB += c.memoryMiB;
      p = chosen + 1;
    }
    if (mine.length < c.vms) {
      for (const i of mine) {
        used[i]!.vms--;
        used[i]!.cores -= c.vcpus;
        used[i]!.memoryMiB -= c.memoryMiB;
      }
    } else {
      placed += mine.length;
    }
  }
  return placed;
}

function timeIt<T>(f: () => T): { ms: number; value: T } {
  const t0 = performance.now();
  const value = f();
  return { ms: performance.now() - t0, value };
}

function engineBench(nodeCount: number, vmCount: number): void {
  console.log(`engine: ${nodeCount} nodes, ${vmCount} VMs`);
  const nodes = makeNodes(nodeCount);
  for (const [strategy, mode] of COMBOS) {
    const clusters = makeClusters(vmCount, strategy, mode);
    placeClusters(nodes, clusters.slice(0, 50)); // warm the JIT
    const full = timeIt(() => placeClusters(nodes, clusters));
    const placed = full.value.clusters.filter((c) => c.schedulable).reduce((s, c) => s + c.nodes.length, 0);
    const naive = timeIt(() => naivePlaceAll(nodes, clusters));
    if (placed !== naive.value) throw new Error(`engine and naive baseline disagree: ${placed} vs ${naive.value} VMs placed`);
    console.log(
      `  ${`${strategy}/${mode}`.padEnd(13)} ${full.ms.toFixed(0).padStart(6)} ms for ${placed} VMs in ${clusters.length} VCs`
      + ` (target < 1000 ms: ${full.ms < 1000 ? 'met' : 'MISSED'})`
      + ` | baseline, naive first-fit scan: ${naive.ms.toFixed(0)} ms`,
    );
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string', default: '10000' },
      vms: { type: 'string', default: '100000' },
      'persist-vms': { type: 'string', default: '100000' },
      'no-etcd': { type: 'boolean', default: false },
    },
  });
  const nodeCount = Number(values.nodes);
  const vmCount = Number(values.vms);
  engineBench(nodeCount, vmCount);
  if (!values['no-etcd']) {
    const { persistBench } = await import('./placement-persist.js');
    const { allocationBench } = await import('./placement-allocation.js');
    await persistBench(nodeCount, Number(values['persist-vms']), allocationBench);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exit(1);
});
