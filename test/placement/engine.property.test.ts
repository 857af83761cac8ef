// Property tests of the placement engine (fast-check), including an oracle: a naive, obviously
// correct transcription of API.md's rules (scan every node for every VM) must give exactly the
// engine's answer.

import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  compareNodeNames, placeCluster, placeClusters,
  type ClusterRequest, type NodeCapacity,
} from '../../reconcilers/placement/engine.js';

const arbNode = (name: string): fc.Arbitrary<NodeCapacity> =>
  fc.record({
    cores: fc.integer({ min: 1, max: 16 }),
    memoryMiB: fc.integer({ min: 1, max: 32 }).map((x) => x * 512),
    maxVMs: fc.option(fc.integer({ min: 0, max: 10 }), { nil: undefined }),
    // Mostly eligible nodes, some not Ready or cordoned.
    ready: fc.integer({ min: 0, max: 5 }).map((x) => x > 0),
    unschedulable: fc.integer({ min: 0, max: 5 }).map((x) => x === 0),
    usedFrac: fc.integer({ min: 0, max: 4 }),
  }).map((r) => ({
    name,
    cores: r.cores,
    memoryMiB: r.memoryMiB,
    maxVMs: r.maxVMs,
    ready: r.ready,
    unschedulable: r.unschedulable,
    // Some nodes are partly used by other VCs (possibly overcommitted in cores by Lazy ones).
    used: {
      cores: Math.floor((r.cores * r.usedFrac) / 3),
      memoryMiB: Math.floor((r.memoryMiB * r.usedFrac) / 5),
      vms: r.usedFrac,
    },
  }));

const arbNodes = fc
  .uniqueArray(fc.integer({ min: 0, max: 40 }), { minLength: 0, maxLength: 12 })
  .chain((ids) => fc.tuple(...ids.map((i) => arbNode(`blade${i}`))));

const arbCluster = (name = 'vc'): fc.Arbitrary<ClusterRequest> =>
  fc.record({
    vms: fc.integer({ min: 0, max: 24 }),
    vcpus: fc.integer({ min: 1, max: 4 }),
    memoryMiB: fc.integer({ min: 1, max: 16 }).map((x) => x * 256),
    strategy: fc.constantFrom('Block' as const, 'Cyclic' as const),
    mode: fc.constantFrom('Strict' as const, 'Lazy' as const),
  }).map((r) => ({ ...r, name, namespace: 'default' }));

/** API.md, literally: one VM at a time, scanning the node order. */
function naivePlace(nodes: readonly NodeCapacity[], c: ClusterRequest): string[] | null {
  const order = [...nodes].sort((a, b) => compareNodeNames(a.name, b.name))
    .filter((n) => n.ready && !n.unschedulable);
  const used = order.map((n) => ({ ...n.used }));
  const fits = (i: number): boolean => {
    const n = order[i]!;
    const u = used[i]!;
    if (n.maxVMs !== undefined && u.vms >= n.maxVMs) return false;
    if (c.memoryMiB > n.memoryMiB - u.memoryMiB) return false;
    if (c.mode === 'Strict' && c.vcpus > n.cores - u.cores) return false;
    return true;
  };
  const out: string[] = [];
  let p = 0;
  for (let vm = 0; vm < c.vms; vm++) {
    let chosen = -1;
    if (c.strategy === 'Block') {
      for (let i = 0; i < order.length && chosen < 0; i++) if (fits(i)) chosen = i;
    } else {
      for (let s = 0; s < order.length && chosen < 0; s++) {
        const i = (p + s) % order.length;
        if (fits(i)) chosen = i;
      }
    }
    if (chosen < 0) return null;
    out.push(order[chosen]!.name);
    used[chosen]!.vms += 1;
    used[chosen]!.cores += c.vcpus;
    used[chosen]!.memoryMiB += c.memoryMiB;
    p = chosen + 1;
  }
  return out;
}

function added(nodes: string[], c: ClusterRequest): Map<string, { cores: number; memoryMiB: number; vms: number }> {
  const m = new Map<string, { cores: number; memoryMiB: number; vms: number }>();
  for (const n of nodes) {
    const a = m.get(n) ?? { cores: 0, memoryMiB: 0, vms: 0 };
    a.cores += c.vcpus;
    a.memoryMiB += c.memoryMiB;
    a.vms += 1;
    m.set(n, a);
  }
  return m;
}

const RUNS = { numRuns: 400 };

describe('placement engine: properties', () => {
  it('gives exactly what the naive reading of API.md gives', () => {
    fc.assert(fc.property(arbNodes, arbCluster(), (nodes, c) => {
      const r = placeCluster(nodes, c);
      const want = naivePlace(nodes, c);
      assert.equal(r.schedulable, want !== null);
      assert.deepEqual(r.nodes, want ?? []);
    }), RUNS);
  });

  it('never exceeds memory or maxVMs, nor cores in Strict mode, and uses only eligible nodes', () => {
    fc.assert(fc.property(arbNodes, arbCluster(), (nodes, c) => {
      const r = placeCluster(nodes, c);
      for (const [name, a] of added(r.nodes, c)) {
        const n = nodes.find((x) => x.name === name)!;
        assert.ok(n.ready && !n.unschedulable, `${name} is not eligible`);
        assert.ok(n.used.memoryMiB + a.memoryMiB <= n.memoryMiB, `memory exceeded on ${name}`);
        if (n.maxVMs !== undefined) assert.ok(n.used.vms + a.vms <= n.maxVMs, `maxVMs exceeded on ${name}`);
        if (c.mode === 'Strict') assert.ok(n.used.cores + a.cores <= n.cores, `cores exceeded on ${name}`);
      }
    }), RUNS);
  });

  it('is all or nothing, and an unschedulable VC has a reason for every node', () => {
    fc.assert(fc.property(arbNodes, arbCluster(), (nodes, c) => {
      const r = placeCluster(nodes, c);
      if (r.schedulable) {
        assert.equal(r.nodes.length, c.vms);
      } else {
        assert.deepEqual(r.nodes, []);
        assert.deepEqual(Object.keys(r.reasons).sort(), nodes.map((n) => n.name).sort());
        for (const why of Object.values(r.reasons)) assert.ok(why.length > 0);
      }
    }), RUNS);
  });

  it('Block uses a prefix of the node order on a fresh set of equal nodes', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 16 }),
      fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }), arbCluster(),
      (count, cores, memGiB, maxVMs, c0) => {
        const c = { ...c0, strategy: 'Block' as const };
        const nodes = Array.from({ length: count }, (_, i) => ({
          name: `blade${count - i}`, cores, memoryMiB: memGiB * 1024, maxVMs, ready: true,
          unschedulable: false, used: { cores: 0, memoryMiB: 0, vms: 0 },
        }));
        const r = placeCluster(nodes, c);
        const usedNames = new Set(r.nodes);
        const prefix = Array.from({ length: usedNames.size }, (_, i) => `blade${i + 1}`);
        assert.deepEqual([...usedNames].sort(), prefix.sort());
        // Every node of the prefix but the last is full for this VC's VMs.
        const perNode = added(r.nodes, c);
        const full = Math.min(
          maxVMs ?? Infinity,
          Math.floor((memGiB * 1024) / c.memoryMiB),
          c.mode === 'Strict' ? Math.floor(cores / c.vcpus) : Infinity,
        );
        for (let i = 1; i < usedNames.size; i++) assert.equal(perNode.get(`blade${i}`)!.vms, full);
      },
    ), RUNS);
  });

  it('Cyclic counts differ by at most one on equal nodes with room', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 30 }), arbCluster(),
      (count, c0) => {
        const c = { ...c0, strategy: 'Cyclic' as const };
        // Room for every VM on every node: counts are the round-robin's alone.
        const nodes = Array.from({ length: count }, (_, i) => ({
          name: `n${i}`, cores: c.vcpus * c.vms, memoryMiB: c.memoryMiB * c.vms, ready: true,
          unschedulable: false, used: { cores: 0, memoryMiB: 0, vms: 0 },
        }));
        const r = placeCluster(nodes, c);
        assert.equal(r.schedulable, true);
        const counts = nodes.map((n) => r.nodes.filter((x) => x === n.name).length);
        assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, counts.join(','));
      },
    ), RUNS);
  });

  it('gives the same output for the same input, whatever order the nodes come in', () => {
    fc.assert(fc.property(arbNodes, fc.array(arbCluster(), { maxLength: 4 }), fc.integer(), (nodes, cs, seed) => {
      const clusters = cs.map((c, i) => ({ ...c, name: `vc${i}` }));
      const a = placeClusters(nodes, clusters, { explain: true });
      const shuffled = [...nodes].sort((x, y) => ((hash(x.name, seed) - hash(y.name, seed)) | 0));
      const b = placeClusters(shuffled, clusters, { explain: true });
      assert.deepEqual(b.clusters, a.clusters);
      assert.deepEqual([...b.used].sort(), [...a.used].sort());
    }), RUNS);
  });

  it('several VCs in a row: each is what a single placement on the remaining room gives', () => {
    fc.assert(fc.property(arbNodes, fc.array(arbCluster(), { maxLength: 5 }), (nodes, cs) => {
      const clusters = cs.map((c, i) => ({ ...c, name: `vc${i}` }));
      const r = placeClusters(nodes, clusters);
      let current = nodes.map((n) => ({ ...n, used: { ...n.used } }));
      clusters.forEach((c, i) => {
        const want = naivePlace(current, c);
        assert.deepEqual(r.clusters[i]!.nodes, want ?? []);
        const add = added(want ?? [], c);
        current = current.map((n) => {
          const a = add.get(n.name);
          return a ? { ...n, used: { cores: n.used.cores + a.cores, memoryMiB: n.used.memoryMiB + a.memoryMiB, vms: n.used.vms + a.vms } } : n;
        });
      });
      for (const n of current) assert.deepEqual(r.used.get(n.name), n.used);
    }), { numRuns: 200 });
  });
});

function hash(s: string, seed: number): number {
  let h = seed | 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h;
}
