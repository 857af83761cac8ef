// The allocation half of hack/bench-placement, on the store persistBench leaves behind (every VM
// bound, every node's allocation right): one VM is deleted on each of 2 x SAMPLE nodes, then
// - the placement/allocation controller frees the first SAMPLE nodes reading the informer caches
//   (its careful path: the node from the store, the VMs from the by-node index);
// - baseline in the same run, the previous design on the other SAMPLE nodes: the node from the
//   store, then every VirtualNode and every Migration listed from the store, per node;
// and the cheap check of a resync of every node at rest, against the previous design's one pass
// over every cached VM (computeAllocations) followed by a lookup per node.

import { performance } from 'node:perf_hooks';
import type { Store } from '../../api/store/types.js';
import type { Migration, PhysicalNode, VirtualNode } from '../../api/types.js';
import { SharedCache } from '../../controllers/cache.js';
import { silentLogger } from '../../controllers/log.js';
import type { ReconcileContext } from '../../controllers/types.js';
import { computeAllocation, computeAllocations } from '../../reconcilers/placement/allocation.js';
import { BoundIndex } from '../../reconcilers/placement/allocation-index.js';
import { allocationController } from '../../reconcilers/placement/controller.js';
import { sameUsage, vmUsage, addUsage } from '../../reconcilers/placement/plan-binding.js';

const pnRef = (name: string) => ({ kind: 'PhysicalNode', name });

export async function allocationBench(store: Store, sample = 10): Promise<void> {
  const cache = new SharedCache(store, { log: silentLogger() });
  for (const k of ['PhysicalNode', 'VirtualNode', 'Migration']) cache.informer(k);
  const index = new BoundIndex(cache); // for the resync measurement
  const ctl = allocationController(cache);
  try {
    const t0 = performance.now();
    cache.start();
    await cache.waitForSync();
    const vms = cache.list<VirtualNode>('VirtualNode');
    console.log(`allocation: ${cache.list('PhysicalNode').length} nodes, ${vms.length} VMs (cache synced in ${((performance.now() - t0) / 1000).toFixed(2)} s, not timed below)`);

    // One VM goes on each of 2 x sample nodes (no finalizers here: deleted at once).
    const victims = new Map<string, VirtualNode>();
    for (const vn of vms) {
      const n = vn.spec?.physicalNode;
      if (n && !victims.has(n)) victims.set(n, vn);
      if (victims.size === 2 * sample) break;
    }
    const want = new Map<string, PhysicalNode['status']>();
    for (const [node, vn] of victims) {
      const pn = cache.get<PhysicalNode>(pnRef(node))!;
      want.set(node, { ...pn.status, allocated: addUsage(pn.status!.allocated!, vmUsage(vn), -1) });
      await store.delete({ kind: 'VirtualNode', name: vn.metadata.name, namespace: vn.metadata.namespace });
    }
    const rev = await store.revision();
    while (index.revision() < rev) await new Promise((r) => setTimeout(r, 5));

    const ctx: ReconcileContext = {
      store, cache, events: { record: () => undefined }, log: silentLogger(), signal: new AbortController().signal,
    };
    const nodes = [...victims.keys()];
    const check = async (node: string) => {
      const got = (await store.get<PhysicalNode>(pnRef(node))).status?.allocated;
      if (!sameUsage(got, want.get(node)!.allocated)) throw new Error(`${node}: allocated ${JSON.stringify(got)}, want ${JSON.stringify(want.get(node)!.allocated)}: the benchmark is broken`);
    };

    const t1 = performance.now();
    for (const node of nodes.slice(0, sample)) {
      const r = await ctl.reconcile(pnRef(node), ctx);
      if (r) throw new Error(`${node}: the controller asked to wait (${JSON.stringify(r)}) with a cache that holds every write`);
    }
    const cachedMs = (performance.now() - t1) / sample;
    for (const node of nodes.slice(0, sample)) await check(node);

    const t2 = performance.now();
    for (const node of nodes.slice(sample)) {
      const pn = (await store.tryGet<PhysicalNode>(pnRef(node)))!;
      const all = (await store.list<VirtualNode>('VirtualNode')).items;
      const migs = (await store.list<Migration>('Migration')).items;
      await store.updateStatus({ ...pn, status: { ...pn.status, allocated: computeAllocation(node, all, migs) } });
    }
    const listedMs = (performance.now() - t2) / sample;
    for (const node of nodes.slice(sample)) await check(node);
    console.log(`  free one VM's room, per node:  ${cachedMs.toFixed(1).padStart(8)} ms from the caches (${sample} nodes)`);
    console.log(`  baseline, list from the store: ${listedMs.toFixed(1).padStart(8)} ms (${sample} nodes); ${(listedMs / cachedMs).toFixed(0)}x`);

    // A resync at rest: every node's cheap check (once the cache holds the writes above).
    const rest = await store.revision();
    while (cache.informer('PhysicalNode').lastRevision() < rest) await new Promise((r) => setTimeout(r, 5));
    const pns = cache.list<PhysicalNode>('PhysicalNode');
    const migs = cache.list<Migration>('Migration');
    const t3 = performance.now();
    let agree = 0;
    for (const pn of pns) if (sameUsage(index.allocation(pn.metadata.name, migs), pn.status?.allocated)) agree++;
    const indexMs = performance.now() - t3;
    const t4 = performance.now();
    const memo = computeAllocations(cache.list<VirtualNode>('VirtualNode'), migs);
    let agreeMemo = 0;
    for (const pn of pns) if (sameUsage(memo.get(pn.metadata.name), pn.status?.allocated)) agreeMemo++;
    const memoMs = performance.now() - t4;
    if (agree !== agreeMemo) throw new Error(`the index and one pass disagree: ${agree} vs ${agreeMemo} nodes agree`);
    console.log(`  resync at rest, ${pns.length} nodes: ${indexMs.toFixed(0).padStart(6)} ms by the index | baseline, one pass over every VM: ${memoMs.toFixed(0)} ms (${agree} nodes agree)`);
  } finally {
    cache.stop();
  }
}
