// The change filters' signatures are sound: a write that keeps what a signature covers changes
// nothing the controller computes from the object (so the filtered event was not needed), and a
// write of a field the controller reads changes the signature (so its event passes). Each case is
// one mutation of a VirtualNode or Migration as the controllers write them.

import assert from 'node:assert/strict';
import type { ApiObject, Migration, VirtualCluster, VirtualNode } from '../../api/types.js';
import { setCondition } from '../../api/conditions.js';
import { controllerReference } from '../../controllers/gc/owner-references.js';
import { gcSignature } from '../../controllers/gc/garbage-collector.js';
import { FOREGROUND_FINALIZER, ORPHAN_FINALIZER } from '../../controllers/gc/propagation.js';
import { hasFinalizer } from '../../api/finalizers.js';
import { planVirtualNodes, summarizeCluster } from '../../reconcilers/virtualcluster/plan.js';
import { virtualNodeSignature } from '../../reconcilers/virtualcluster/controller.js';
import { computeAllocation, MIGRATION_APPLIED } from '../../reconcilers/placement/allocation.js';
import { migrationAllocationSignature, vmAllocationSignature, vmBindingSignature } from '../../reconcilers/placement/controller.js';
import { planBinding } from '../../reconcilers/placement/plan-binding.js';
import { physicalNode, virtualCluster, virtualNode } from '../placement/fixtures.js';

type Mutation<T> = [string, (o: T) => T];
const sig = (f: (o: ApiObject) => unknown, o: ApiObject) => JSON.stringify(f(o));

/** Every `unread` mutation keeps the signature and the output; every `read` one changes the signature. */
function checkSignature<T extends ApiObject>(
  base: T, signature: (o: ApiObject) => unknown, output: (o: T) => unknown,
  unread: Mutation<T>[], read: Mutation<T>[],
): void {
  for (const [what, m] of unread) {
    const after = m(structuredClone(base));
    assert.equal(sig(signature, after), sig(signature, base), `${what}: the signature changed`);
    assert.deepEqual(output(after), output(base), `${what}: not in the signature, but the output changed`);
  }
  for (const [what, m] of read) {
    const after = m(structuredClone(base));
    assert.notEqual(sig(signature, after), sig(signature, base), `${what}: read, but the signature stayed`);
  }
}

const vc: VirtualCluster = { ...virtualCluster('c', 2, 1, 128), metadata: { name: 'c', namespace: 'default', uid: 'uid-c', generation: 1 } };
const vm = (): VirtualNode => {
  const v = virtualNode(vc, 0);
  return {
    ...v,
    metadata: { ...v.metadata, uid: 'uid-c-0', generation: 2, resourceVersion: '10', ownerReferences: [controllerReference(vc)] },
    spec: { ...v.spec!, physicalNode: 'n1' },
    status: {
      phase: 'Starting', host: 'n1', ip: '10.0.0.2', observedGeneration: 2,
      conditions: setCondition(setCondition(undefined, { type: 'Placed', status: 'True', reason: 'Bound', message: 'on n1' }, 2),
        { type: 'Reconciling', status: 'True', reason: 'Starting', message: 'starting' }, 2),
    },
  };
};
const withStatus = (patch: Partial<NonNullable<VirtualNode['status']>>) => (o: VirtualNode): VirtualNode => ({ ...o, status: { ...o.status, ...patch } });
const withCondition = (type: string, status: 'True' | 'False', reason: string, message: string) => (o: VirtualNode): VirtualNode =>
  ({ ...o, status: { ...o.status, conditions: setCondition(o.status?.conditions, { type, status, reason, message }, 2) } });
const newResourceVersion = (o: VirtualNode): VirtualNode => ({ ...o, metadata: { ...o.metadata, resourceVersion: '11' } });

/** Status writes a VM gets that neither its VC nor its node's allocation reads. */
const OTHER_WRITES: Mutation<VirtualNode>[] = [
  ['a new resourceVersion', newResourceVersion],
  ['observedGeneration', withStatus({ observedGeneration: 3 })],
  ['message', withStatus({ message: 'booting' })],
  ['restarts', withStatus({ restarts: 1 })],
  ['bootTime', withStatus({ bootTime: '2026-12-07T00:00:00Z' })],
  ['Reconciling', withCondition('Reconciling', 'False', 'Done', '')],
  ['a migration condition', withCondition('Migrating', 'True', 'Copying', '40 %')],
];

describe('change-filter signatures are sound', () => {
  it('the VirtualCluster controller\'s of a VirtualNode: its other status writes change neither plan nor summary; its phase, host, address, gates, labels and deletion do', () => {
    const output = (v: VirtualNode) => {
      const other = { ...vm(), metadata: { ...vm().metadata, name: 'c-1', uid: 'uid-c-1' }, spec: { ...vm().spec!, index: 1 } };
      return [planVirtualNodes(vc, [v, other]), summarizeCluster(vc, [v, other])];
    };
    checkSignature(vm(), virtualNodeSignature, output, [
      ...OTHER_WRITES,
      ['runningSize', withStatus({ runningSize: { vcpus: 2, memoryMiB: 256 } })],
    ], [
      ['phase', withStatus({ phase: 'Running' })],
      ['host', withStatus({ host: 'n2' })],
      ['ip', withStatus({ ip: '10.0.0.3' })],
      ['Running gate', withCondition('Running', 'False', 'Failed', 'domain died')],
      ['GuestReady', withCondition('GuestReady', 'True', 'Reported', 'READY')],
      ['a gate\'s message', withCondition('Placed', 'True', 'Bound', 'on n2')],
      ['labels', (o) => ({ ...o, metadata: { ...o.metadata, labels: {} } })],
      ['deletion', (o) => ({ ...o, metadata: { ...o.metadata, deletionTimestamp: '2026-12-07T00:00:00Z' } })],
      ['spec (generation)', (o) => ({ ...o, metadata: { ...o.metadata, generation: 3 }, spec: { ...o.spec!, vcpus: 2 } })],
    ]);
  });

  it('the allocation controller\'s of a VirtualNode and a Migration: status writes change no allocation; binding, size, running size, Failed and the applied mark do', () => {
    const mig: Migration = {
      apiVersion: vm().apiVersion, kind: 'Migration',
      metadata: { name: 'm', namespace: 'default', uid: 'uid-m', generation: 1, resourceVersion: '12' },
      spec: { virtualNode: 'c-0', targetNode: 'n2' },
      status: { phase: 'Running', sourceNode: 'n1' },
    };
    const allocations = (v: VirtualNode, m: Migration) => ['n1', 'n2'].map((n) => computeAllocation(n, [v], [m]));
    checkSignature(vm(), vmAllocationSignature, (v) => allocations(v, mig), OTHER_WRITES.concat([
      ['phase', withStatus({ phase: 'Running' })],
      ['host', withStatus({ host: 'n2' })],
      ['GuestReady', withCondition('GuestReady', 'True', 'Reported', 'READY')],
    ]), [
      ['runningSize', withStatus({ runningSize: { vcpus: 2, memoryMiB: 256 } })],
      ['binding (generation)', (o) => ({ ...o, metadata: { ...o.metadata, generation: 3 }, spec: { ...o.spec!, physicalNode: 'n2' } })],
    ]);
    const withMig = (patch: Partial<Migration['status']>) => (m: Migration): Migration => ({ ...m, status: { ...m.status, ...patch } as Migration['status'] });
    checkSignature(mig, migrationAllocationSignature, (m) => allocations(vm(), m), [
      ['a new resourceVersion', (m) => ({ ...m, metadata: { ...m.metadata, resourceVersion: '13' } })],
      ['Succeeded (not yet applied)', withMig({ phase: 'Succeeded' })],
      ['progress', withMig({ message: 'copying' })],
    ], [
      ['Failed', withMig({ phase: 'Failed' })],
      ['applied', (m) => ({ ...m, metadata: { ...m.metadata, annotations: { [MIGRATION_APPLIED]: 'true' } } })],
      ['target (generation)', (m) => ({ ...m, metadata: { ...m.metadata, generation: 2 }, spec: { ...m.spec!, targetNode: 'n3' } })],
    ]);
  });

  it('placement\'s of a VirtualNode: a phase within its class (Starting to Running) and status writes change no binding plan; active to Suspended, running size, binding and deletion do', () => {
    // The plans that read a VM's phase: a VC whose placement changed (re-placed once no VM is
    // active) and one whose hypervisor changed (re-placed once none is active or suspended).
    const pns = [physicalNode('n1', 8, 4096), physicalNode('n2', 8, 4096)];
    const remap: VirtualCluster = { ...vc, spec: { ...vc.spec!, placement: { strategy: 'Cyclic', mode: 'Lazy' } }, status: { placement: { strategy: 'Block', mode: 'Strict' } } };
    const rekind: VirtualCluster = { ...vc, spec: { ...vc.spec!, hypervisor: 'xen' } };
    const output = (v: VirtualNode) => {
      const other = { ...vm(), metadata: { ...vm().metadata, name: 'c-1', uid: 'uid-c-1' }, spec: { ...vm().spec!, index: 1 }, status: { phase: 'Stopped' as const } };
      return [remap, rekind, vc].map((c) => planBinding(c, [v, other], pns));
    };
    checkSignature(vm(), vmBindingSignature, output, OTHER_WRITES.concat([
      ['phase Starting to Running', withStatus({ phase: 'Running' })],
      ['host', withStatus({ host: 'n2' })],
      ['GuestReady', withCondition('GuestReady', 'True', 'Reported', 'READY')],
    ]), [
      ['phase Starting to Suspended', withStatus({ phase: 'Suspended' })],
      ['phase Starting to Stopped', withStatus({ phase: 'Stopped' })],
      ['runningSize', withStatus({ runningSize: { vcpus: 2, memoryMiB: 256 } })],
      ['binding (generation)', (o) => ({ ...o, metadata: { ...o.metadata, generation: 3 }, spec: { ...o.spec!, physicalNode: 'n2' } })],
      ['deletion', (o) => ({ ...o, metadata: { ...o.metadata, deletionTimestamp: '2026-12-08T00:00:00Z' } })],
    ]);
    // And the read ones do change a plan: active blocks the remap, stopped lets it go.
    const stopped = withStatus({ phase: 'Stopped' })(vm());
    assert.notDeepEqual(output(stopped)[0], output(vm())[0], 'a stopped VC is re-placed, an active one waits');
  });

  it('the garbage collector\'s: other controllers\' finalizers and status writes change nothing it decides; owners, deletion and its own finalizers do', () => {
    // What the collector decides from an object: its owner work (orphan / foreground, while being
    // deleted) and the owners it checks as a dependent.
    const output = (v: VirtualNode) => [!!v.metadata.deletionTimestamp && hasFinalizer(v, ORPHAN_FINALIZER),
      !!v.metadata.deletionTimestamp && hasFinalizer(v, FOREGROUND_FINALIZER), v.metadata.ownerReferences, v.metadata.uid];
    const withFinalizers = (...f: string[]) => (o: VirtualNode): VirtualNode => ({ ...o, metadata: { ...o.metadata, finalizers: f } });
    checkSignature(vm(), gcSignature, output, OTHER_WRITES.concat([
      ['the runtime\'s finalizer', withFinalizers('virtualinux.org/runtime')],
      ['the storage\'s and the runtime\'s finalizers', withFinalizers('virtualinux.org/storage', 'virtualinux.org/runtime')],
      ['phase', withStatus({ phase: 'Running' })],
    ]), [
      ['the orphan finalizer', withFinalizers(ORPHAN_FINALIZER)],
      ['the foreground finalizer', withFinalizers('virtualinux.org/runtime', FOREGROUND_FINALIZER)],
      ['deletion', (o) => ({ ...o, metadata: { ...o.metadata, deletionTimestamp: '2026-12-08T00:00:00Z' } })],
      ['its owners', (o) => ({ ...o, metadata: { ...o.metadata, ownerReferences: [] } })],
    ]);
  });
});
