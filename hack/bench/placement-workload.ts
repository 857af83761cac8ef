// The benchmark workload of hack/bench-placement: a deterministic physical cluster of mixed
// nodes and VirtualClusters of mixed sizes, big enough that every VC fits in Strict mode.

import type { PlacementMode, PlacementStrategy } from '../../api/types.js';
import type { ClusterRequest, NodeCapacity } from '../../reconcilers/placement/engine.js';

/** Small deterministic PRNG (mulberry32), so every run places the same workload. */
export function makeRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function makeNodes(count: number, seed = 1): NodeCapacity[] {
  const rnd = makeRandom(seed);
  const shapes = [
    { cores: 16, memoryMiB: 64 * 1024 },
    { cores: 32, memoryMiB: 128 * 1024 },
    { cores: 48, memoryMiB: 96 * 1024 },
    { cores: 64, memoryMiB: 256 * 1024 },
  ];
  return Array.from({ length: count }, (_, i) => {
    const s = shapes[Math.floor(rnd() * shapes.length)]!;
    return {
      name: `blade${i + 1}`,
      ready: true,
      unschedulable: false,
      cores: s.cores,
      memoryMiB: s.memoryMiB,
      maxVMs: rnd() < 0.25 ? 12 : undefined,
      used: { cores: 0, memoryMiB: 0, vms: 0 },
    };
  });
}

/** VCs of mixed sizes (1 to 200 VMs, mostly small) adding up to exactly `totalVMs`. */
export function makeClusters(
  totalVMs: number, strategy: PlacementStrategy, mode: PlacementMode, seed = 2,
): ClusterRequest[] {
  const rnd = makeRandom(seed);
  const out: ClusterRequest[] = [];
  let left = totalVMs;
  while (left > 0) {
    const r = rnd();
    const size = Math.min(left, r < 0.6 ? 1 + Math.floor(rnd() * 8) : r < 0.9 ? 8 + Math.floor(rnd() * 40) : 50 + Math.floor(rnd() * 150));
    out.push({
      name: `vc${out.length}`,
      namespace: `ns${out.length % 16}`,
      vms: size,
      vcpus: 1 + Math.floor(rnd() * 2),
      memoryMiB: 256 * (1 + Math.floor(rnd() * 8)),
      strategy,
      mode,
    });
    left -= size;
  }
  return out;
}
