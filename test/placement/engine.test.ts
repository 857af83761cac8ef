// Table tests of the placement engine for every strategy x mode, against API.md's semantics.

import assert from 'node:assert/strict';
import {
  compareNodeNames, placeCluster, placeClusters, sortNodes,
  type ClusterRequest, type NodeCapacity,
} from '../../reconcilers/placement/engine.js';
import type { PlacementMode, PlacementStrategy } from '../../api/types.js';

function node(
  name: string, cores: number, memoryMiB: number,
  o: Partial<Omit<NodeCapacity, 'name' | 'cores' | 'memoryMiB'>> = {},
): NodeCapacity {
  return {
    name, cores, memoryMiB, ready: o.ready ?? true, unschedulable: o.unschedulable ?? false,
    maxVMs: o.maxVMs, used: o.used ?? { cores: 0, memoryMiB: 0, vms: 0 },
  };
}

function vc(
  vms: number, vcpus: number, memoryMiB: number,
  strategy: PlacementStrategy = 'Block', mode: PlacementMode = 'Strict', name = 'stripes',
): ClusterRequest {
  return { name, namespace: 'default', vms, vcpus, memoryMiB, strategy, mode };
}

type Combo = 'Block/Strict' | 'Block/Lazy' | 'Cyclic/Strict' | 'Cyclic/Lazy';
const COMBOS: [Combo, PlacementStrategy, PlacementMode][] = [
  ['Block/Strict', 'Block', 'Strict'],
  ['Block/Lazy', 'Block', 'Lazy'],
  ['Cyclic/Strict', 'Cyclic', 'Strict'],
  ['Cyclic/Lazy', 'Cyclic', 'Lazy'],
];

interface Case {
  title: string;
  nodes: NodeCapacity[];
  vms: number;
  vcpus: number;
  memoryMiB: number;
  /** Node per VM index, or null for unschedulable. */
  expect: Record<Combo, string[] | null>;
}

const b = (...xs: number[]) => xs.map((x) => `blade${x}`);
const same = (v: string[] | null): Record<Combo, string[] | null> => ({
  'Block/Strict': v, 'Block/Lazy': v, 'Cyclic/Strict': v, 'Cyclic/Lazy': v,
});

const CASES: Case[] = [
  {
    title: 'homogeneous nodes',
    nodes: [node('blade1', 4, 8192), node('blade2', 4, 8192), node('blade3', 4, 8192)],
    vms: 6, vcpus: 1, memoryMiB: 1024,
    expect: {
      'Block/Strict': b(1, 1, 1, 1, 2, 2),
      'Block/Lazy': b(1, 1, 1, 1, 1, 1),
      'Cyclic/Strict': b(1, 2, 3, 1, 2, 3),
      'Cyclic/Lazy': b(1, 2, 3, 1, 2, 3),
    },
  },
  {
    title: 'mixed nodes',
    nodes: [node('blade1', 2, 4096), node('blade2', 8, 2048), node('blade3', 4, 16384)],
    vms: 8, vcpus: 1, memoryMiB: 1024,
    expect: {
      'Block/Strict': b(1, 1, 2, 2, 3, 3, 3, 3),
      'Block/Lazy': b(1, 1, 1, 1, 2, 2, 3, 3),
      'Cyclic/Strict': b(1, 2, 3, 1, 2, 3, 3, 3),
      'Cyclic/Lazy': b(1, 2, 3, 1, 2, 3, 1, 3),
    },
  },
  {
    title: 'maxVMs caps a node in both modes',
    nodes: [node('blade1', 64, 65536, { maxVMs: 2 }), node('blade2', 64, 65536, { maxVMs: 3 })],
    vms: 5, vcpus: 1, memoryMiB: 512,
    expect: {
      'Block/Strict': b(1, 1, 2, 2, 2),
      'Block/Lazy': b(1, 1, 2, 2, 2),
      'Cyclic/Strict': b(1, 2, 1, 2, 2),
      'Cyclic/Lazy': b(1, 2, 1, 2, 2),
    },
  },
  {
    title: 'nodes partly used by other VCs',
    nodes: [
      node('blade1', 4, 8192, { used: { cores: 3, memoryMiB: 6144, vms: 3 } }),
      node('blade2', 4, 8192, { used: { cores: 1, memoryMiB: 7168, vms: 1 } }),
      node('blade3', 4, 8192),
    ],
    vms: 5, vcpus: 1, memoryMiB: 1024,
    expect: {
      // blade1: 1 core / 2 GiB free; blade2: 3 cores / 1 GiB free; blade3: empty.
      'Block/Strict': b(1, 2, 3, 3, 3),
      'Block/Lazy': b(1, 1, 2, 3, 3),
      'Cyclic/Strict': b(1, 2, 3, 3, 3),
      'Cyclic/Lazy': b(1, 2, 3, 1, 3),
    },
  },
  {
    title: 'memory-bound: cores to spare, memory decides in both modes',
    nodes: [node('blade1', 16, 2048), node('blade2', 16, 2048), node('blade3', 16, 4096)],
    vms: 6, vcpus: 2, memoryMiB: 1024,
    expect: {
      'Block/Strict': b(1, 1, 2, 2, 3, 3),
      'Block/Lazy': b(1, 1, 2, 2, 3, 3),
      'Cyclic/Strict': b(1, 2, 3, 1, 2, 3),
      'Cyclic/Lazy': b(1, 2, 3, 1, 2, 3),
    },
  },
  {
    title: 'Lazy overcommits cores, Strict refuses',
    nodes: [node('blade1', 2, 8192), node('blade2', 2, 8192)],
    vms: 6, vcpus: 1, memoryMiB: 1024,
    expect: {
      'Block/Strict': null,
      'Block/Lazy': b(1, 1, 1, 1, 1, 1),
      'Cyclic/Strict': null,
      'Cyclic/Lazy': b(1, 2, 1, 2, 1, 2),
    },
  },
  {
    title: 'cordoned and not-Ready nodes are skipped',
    nodes: [
      node('blade1', 8, 8192, { unschedulable: true }),
      node('blade2', 8, 8192, { ready: false }),
      node('blade3', 8, 8192),
      node('blade4', 8, 8192),
    ],
    vms: 3, vcpus: 1, memoryMiB: 1024,
    expect: {
      'Block/Strict': b(3, 3, 3),
      'Block/Lazy': b(3, 3, 3),
      'Cyclic/Strict': b(3, 4, 3),
      'Cyclic/Lazy': b(3, 4, 3),
    },
  },
  {
    title: 'natural name order: blade2 before blade10',
    nodes: [node('blade10', 1, 1024), node('blade1', 1, 1024), node('blade2', 1, 1024)],
    vms: 3, vcpus: 1, memoryMiB: 1024,
    expect: same(b(1, 2, 10)),
  },
  {
    title: 'all or nothing: one VM too many',
    nodes: [node('blade1', 4, 2048), node('blade2', 4, 2048)],
    vms: 5, vcpus: 1, memoryMiB: 1024,
    expect: same(null),
  },
  {
    title: 'no nodes at all',
    nodes: [],
    vms: 1, vcpus: 1, memoryMiB: 1024,
    expect: same(null),
  },
  {
    title: 'zero VMs is trivially placed',
    nodes: [],
    vms: 0, vcpus: 1, memoryMiB: 1024,
    expect: same([]),
  },
];

describe('placement engine: strategy x mode tables', () => {
  for (const c of CASES) {
    for (const [combo, strategy, mode] of COMBOS) {
      it(`${c.title} [${combo}]`, () => {
        const r = placeCluster(c.nodes, vc(c.vms, c.vcpus, c.memoryMiB, strategy, mode));
        const want = c.expect[combo];
        if (want === null) {
          assert.equal(r.schedulable, false, `expected Unschedulable, got ${r.nodes.join(',')}`);
          assert.deepEqual(r.nodes, []);
          assert.deepEqual(Object.keys(r.reasons).sort(), c.nodes.map((n) => n.name).sort());
        } else {
          assert.equal(r.schedulable, true, r.message);
          assert.deepEqual(r.nodes, want);
        }
      });
    }
  }
});

describe('placement engine: reasons', () => {
  it('says per node why it was refused', () => {
    const nodes = [
      node('blade1', 8, 8192, { unschedulable: true }),
      node('blade2', 8, 8192, { ready: false }),
      node('blade3', 8, 4096, { used: { cores: 1, memoryMiB: 3584, vms: 1 } }),
      node('blade4', 1, 8192),
      node('blade5', 8, 8192, { maxVMs: 8, used: { cores: 0, memoryMiB: 0, vms: 8 } }),
      node('blade6', 8, 3072),
    ];
    const r = placeCluster(nodes, vc(4, 2, 1024, 'Block', 'Strict'));
    assert.equal(r.schedulable, false);
    assert.deepEqual(r.reasons, {
      blade1: 'cordoned',
      blade2: 'not Ready',
      blade3: 'insufficient memory (free 512 MiB, need 1024 MiB)',
      blade4: 'insufficient cores (Strict: free 1, need 2)',
      blade5: 'maxVMs 8 reached',
      blade6: 'room for 3 VMs, then insufficient memory (free 0 MiB, need 1024 MiB)',
    });
    assert.match(r.message, /^cannot place 4 VMs of 2 vCPU and 1024 MiB \(Block, Strict\): room for 3 on 6 nodes; blade1: cordoned; /);
    assert.match(r.message, /blade3: insufficient memory \(free 512 MiB, need 1024 MiB\)/);
  });

  it('Lazy never gives cores as a reason', () => {
    const r = placeCluster([node('blade1', 1, 1024)], vc(2, 4, 1024, 'Cyclic', 'Lazy'));
    assert.equal(r.schedulable, false);
    assert.deepEqual(r.reasons, {
      blade1: 'room for 1 VM, then insufficient memory (free 0 MiB, need 1024 MiB)',
    });
  });

  it('explain lists, for a schedulable VC, the nodes that cannot take one VM', () => {
    const nodes = [
      node('blade1', 4, 8192),
      node('blade2', 4, 8192, { unschedulable: true, ready: false }),
      node('blade3', 4, 512),
    ];
    const quiet = placeCluster(nodes, vc(2, 1, 1024));
    assert.deepEqual(quiet.reasons, {});
    const r = placeCluster(nodes, vc(2, 1, 1024), { explain: true });
    assert.equal(r.schedulable, true);
    assert.deepEqual(r.reasons, {
      blade2: 'not Ready, cordoned',
      blade3: 'insufficient memory (free 512 MiB, need 1024 MiB)',
    });
  });

  it('a long message is cut, the reasons map is whole', () => {
    const nodes = Array.from({ length: 40 }, (_, i) => node(`n${i}`, 1, 512));
    const r = placeCluster(nodes, vc(1, 1, 1024));
    assert.equal(Object.keys(r.reasons).length, 40);
    assert.match(r.message, /; and 24 more nodes$/);
  });
});

describe('placement engine: several VCs', () => {
  it('places VCs in order, each seeing what the ones before took; a refused VC takes nothing', () => {
    const nodes = [node('blade1', 4, 4096), node('blade2', 4, 4096)];
    const r = placeClusters(nodes, [
      vc(3, 1, 1024, 'Block', 'Strict', 'a'),
      vc(4, 1, 1024, 'Block', 'Strict', 'b'), // 5 slots left: fits
      vc(2, 1, 1024, 'Cyclic', 'Strict', 'c'), // 1 slot left: refused
      vc(1, 1, 1024, 'Cyclic', 'Strict', 'd'),
    ]);
    assert.deepEqual(r.clusters.map((c) => c.schedulable), [true, true, false, true]);
    assert.deepEqual(r.clusters[0]!.nodes, b(1, 1, 1));
    assert.deepEqual(r.clusters[1]!.nodes, b(1, 2, 2, 2));
    assert.deepEqual(r.clusters[3]!.nodes, b(2));
    assert.deepEqual(r.used.get('blade1'), { cores: 4, memoryMiB: 4096, vms: 4 });
    assert.deepEqual(r.used.get('blade2'), { cores: 4, memoryMiB: 4096, vms: 4 });
  });
});

describe('natural node order', () => {
  it('orders digit runs by value and is total', () => {
    const names = ['blade10', 'blade2', 'blade1', 'a', 'blade02', 'blade', 'rack1-blade10', 'rack1-blade9', 'b'];
    assert.deepEqual(sortNodes(names.map((name) => ({ name }))).map((x) => x.name), [
      'a', 'b', 'blade', 'blade1', 'blade02', 'blade2', 'blade10', 'rack1-blade9', 'rack1-blade10',
    ]);
    assert.ok(compareNodeNames('blade2', 'blade10') < 0);
    assert.ok(compareNodeNames('blade10', 'blade2') > 0);
    assert.equal(compareNodeNames('x', 'x'), 0);
    assert.ok(compareNodeNames('n99999999999999999999', 'n100000000000000000000') < 0);
  });

  it('sorts the objects it is given each time, the same names in another order or with one changed included', () => {
    const want = ['blade1', 'blade2', 'blade3', 'blade10'];
    const order = (names: string[]) => sortNodes(names.map((name) => ({ name, tag: names.join() }))).map((x) => `${x.name}@${x.tag}`);
    const a = ['blade10', 'blade2', 'blade1', 'blade3'];
    assert.deepEqual(order(a), want.map((n) => `${n}@${a.join()}`));
    assert.deepEqual(order(a), want.map((n) => `${n}@${a.join()}`), 'again: the same order, of the objects given this time');
    const b = ['blade3', 'blade1', 'blade10', 'blade2'];
    assert.deepEqual(order(b), want.map((n) => `${n}@${b.join()}`));
    const c = ['blade3', 'blade1', 'blade0', 'blade2'];
    assert.deepEqual(order(c).map((x) => x.split('@')[0]), ['blade0', 'blade1', 'blade2', 'blade3']);
    assert.deepEqual(order(['blade3', 'blade1']).map((x) => x.split('@')[0]), ['blade1', 'blade3']);
  });
});
