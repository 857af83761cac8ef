// Property: computeAllocation(node, ...) (one pass for one node) gives what computeAllocations
// (every node at once) gives for that node, for any VMs, bindings and Migrations (several onto
// one VM, Failed, applied, onto the node the VM is on, naming a VM that does not exist).

import assert from 'node:assert/strict';
import fc from 'fast-check';
import { API_VERSION, type Migration, type VirtualNode } from '../../api/types.js';
import { computeAllocation, computeAllocations, MIGRATION_APPLIED } from '../../reconcilers/placement/allocation.js';
import { ZERO } from '../../reconcilers/placement/plan-binding.js';

const NODES = ['n1', 'n2', 'n3'];
const node = fc.constantFrom(...NODES);

const arbVm = fc.record({
  name: fc.constantFrom('a', 'b', 'c', 'd'), ns: fc.constantFrom('x', 'y'),
  node: fc.option(node, { nil: undefined }), vcpus: fc.integer({ min: 1, max: 4 }), memoryMiB: fc.integer({ min: 64, max: 4096 }),
}).map(({ name, ns, node: n, vcpus, memoryMiB }): VirtualNode => ({
  apiVersion: API_VERSION, kind: 'VirtualNode', metadata: { name, namespace: ns },
  spec: { cluster: 'c', index: 0, vcpus, memoryMiB, ...(n ? { physicalNode: n } : {}) },
}));

const arbMigration = fc.record({
  vm: fc.constantFrom('a', 'b', 'c', 'd', 'e'), ns: fc.constantFrom('x', 'y'), target: node,
  phase: fc.constantFrom(undefined, 'Running', 'Succeeded', 'Failed'), applied: fc.boolean(),
}).map(({ vm, ns, target, phase, applied }): Migration => ({
  apiVersion: API_VERSION, kind: 'Migration',
  metadata: { name: `${vm}-${target}`, namespace: ns, ...(applied ? { annotations: { [MIGRATION_APPLIED]: 'true' } } : {}) },
  spec: { virtualNode: vm, targetNode: target },
  ...(phase ? { status: { phase } } : {}),
} as Migration));

describe('computeAllocation (property)', () => {
  it('equals computeAllocations for each node', () => {
    fc.assert(fc.property(fc.array(arbVm, { maxLength: 12 }), fc.array(arbMigration, { maxLength: 8 }), (vns, migs) => {
      const all = computeAllocations(vns, migs);
      for (const n of [...NODES, 'n4']) assert.deepEqual(computeAllocation(n, vns, migs), all.get(n) ?? ZERO, n);
    }), { numRuns: 500 });
  });
});
