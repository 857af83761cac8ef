import assert from 'node:assert/strict';
import { API_VERSION, type Condition, type VirtualCluster, type VirtualNode, type VNPhase } from '../../api/types.js';
import { planVirtualNodes, summarizeCluster } from '../../reconcilers/virtualcluster/plan.js';
import { CLUSTER_LABEL } from '../../api/labels.js';

function vc(nodes: number, extra: Partial<VirtualCluster['metadata']> = {}, state: 'Running' | 'Suspended' | 'Stopped' = 'Running', conditions?: Condition[]): VirtualCluster {
  return {
    apiVersion: API_VERSION,
    kind: 'VirtualCluster',
    metadata: { name: 'stripes', namespace: 'default', uid: 'vc-uid', generation: 3, ...extra },
    spec: {
      nodes, template: 'busybox', node: { vcpus: 1, memoryMiB: 256, diskGiB: 4, swapMiB: 128 },
      placement: { strategy: 'Block', mode: 'Strict' }, state,
    },
    status: conditions ? { conditions } : undefined,
  };
}

function vn(i: number, opts: { phase?: VNPhase; owner?: string; deleting?: boolean; vcpus?: number; host?: string; conditions?: Condition[] } = {}): VirtualNode {
  return {
    apiVersion: API_VERSION,
    kind: 'VirtualNode',
    metadata: {
      name: `stripes-${i}`, namespace: 'default', labels: { [CLUSTER_LABEL]: 'stripes' },
      ownerReferences: [{ apiVersion: API_VERSION, kind: 'VirtualCluster', name: 'stripes', uid: opts.owner ?? 'vc-uid', controller: true }],
      ...(opts.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
    },
    spec: { cluster: 'stripes', index: i, vcpus: opts.vcpus ?? 1, memoryMiB: 256, ...(opts.host ? { physicalNode: opts.host } : {}) },
    status: { phase: opts.phase ?? 'Pending', ...(opts.conditions ? { conditions: opts.conditions } : {}) },
  };
}

const cond = (type: string, status: Condition['status'], reason = 'R', message = 'm'): Condition =>
  ({ type, status, reason, message, lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 1 });
const guest = (): Condition => cond('GuestReady', 'True', 'AgentReported');

describe('planVirtualNodes', () => {
  const names = (xs: VirtualNode[]) => xs.map((x) => x.metadata.name);
  const table: { name: string; vc: VirtualCluster; existing: VirtualNode[]; create: string[]; update: string[]; del: string[]; blocked: string[] }[] = [
    { name: 'creates every node of a new cluster', vc: vc(3), existing: [], create: ['stripes-0', 'stripes-1', 'stripes-2'], update: [], del: [], blocked: [] },
    { name: 'creates only the missing ones', vc: vc(3), existing: [vn(0), vn(2)], create: ['stripes-1'], update: [], del: [], blocked: [] },
    { name: 'nothing to do when complete', vc: vc(2), existing: [vn(0), vn(1)], create: [], update: [], del: [], blocked: [] },
    { name: 'scales down from the highest index', vc: vc(1), existing: [vn(0), vn(1), vn(3), vn(2)], create: [], update: [], del: ['stripes-3', 'stripes-2', 'stripes-1'], blocked: [] },
    { name: 'does not delete again what is terminating', vc: vc(1), existing: [vn(0), vn(1, { deleting: true }), vn(2)], create: [], update: [], del: ['stripes-2'], blocked: [] },
    { name: 'scales to zero', vc: vc(0), existing: [vn(0), vn(1)], create: [], update: [], del: ['stripes-1', 'stripes-0'], blocked: [] },
    { name: 'a name held by an earlier cluster of the same name blocks, never deleted by us', vc: vc(2), existing: [vn(0, { owner: 'old-uid' }), vn(1), vn(5, { owner: 'old-uid' })], create: [], update: [], del: [], blocked: ['stripes-0'] },
    { name: 'updates unbound nodes whose size differs; bound ones are resized by placement (checked against their node)', vc: vc(2), existing: [vn(0, { vcpus: 2, host: 'blade1' }), vn(1, { vcpus: 2 })], create: [], update: ['stripes-1'], del: [], blocked: [] },
    { name: 'a terminating cluster plans nothing', vc: vc(3, { deletionTimestamp: '2026-01-01T00:00:00Z' }), existing: [vn(0)], create: [], update: [], del: [], blocked: [] },
  ];
  for (const t of table) {
    it(t.name, () => {
      const p = planVirtualNodes(t.vc, t.existing);
      assert.deepEqual(names(p.create), t.create);
      assert.deepEqual(names(p.update), t.update);
      assert.deepEqual(names(p.delete), t.del);
      assert.deepEqual(p.blocked, t.blocked);
    });
  }

  it('creates nodes with spec, label and a controller ownerReference', () => {
    const [n] = planVirtualNodes(vc(1), []).create;
    assert.deepEqual(n?.spec, { cluster: 'stripes', index: 0, vcpus: 1, memoryMiB: 256 });
    assert.equal(n?.metadata.labels?.[CLUSTER_LABEL], 'stripes');
    assert.equal(n?.metadata.namespace, 'default');
    assert.deepEqual(n?.metadata.ownerReferences, [
      { apiVersion: API_VERSION, kind: 'VirtualCluster', name: 'stripes', uid: 'vc-uid', controller: true, blockOwnerDeletion: true },
    ]);
    assert.deepEqual(planVirtualNodes(vc(1), [vn(0, { vcpus: 4, host: 'blade7' })]).update, [], 'a bound node is resized by placement');
    const [u] = planVirtualNodes(vc(1), [vn(0, { vcpus: 4 })]).update;
    assert.equal(u?.spec?.vcpus, 1);
  });
});

describe('summarizeCluster', () => {
  const table: { name: string; vc: VirtualCluster; nodes: VirtualNode[]; phase: string; ready: string; reason: string }[] = [
    { name: 'no nodes yet', vc: vc(2), nodes: [], phase: 'Pending', ready: 'False', reason: 'Progressing' },
    { name: 'all pending', vc: vc(2), nodes: [vn(0), vn(1, { phase: 'Scheduled' })], phase: 'Pending', ready: 'False', reason: 'Progressing' },
    { name: 'some starting', vc: vc(2), nodes: [vn(0, { phase: 'Running' }), vn(1, { phase: 'Starting' })], phase: 'Provisioning', ready: 'False', reason: 'Progressing' },
    { name: 'all running, every guest reported in', vc: vc(2), nodes: [vn(0, { phase: 'Running', conditions: [guest()] }), vn(1, { phase: 'Running', conditions: [guest()] })], phase: 'Running', ready: 'True', reason: 'NodesRunning' },
    { name: 'all running, one guest still booting: not Ready (Running is the hypervisor\'s word)', vc: vc(2), nodes: [vn(0, { phase: 'Running', conditions: [guest()] }), vn(1, { phase: 'Running', conditions: [cond('GuestReady', 'False', 'Booting')] })], phase: 'Running', ready: 'False', reason: 'Booting' },
    { name: 'all running, a guest not yet probed: not Ready', vc: vc(2), nodes: [vn(0, { phase: 'Running', conditions: [guest()] }), vn(1, { phase: 'Running' })], phase: 'Running', ready: 'False', reason: 'GuestsBooting' },
    { name: 'a boot timeout gates Ready with its reason', vc: vc(1), nodes: [vn(0, { phase: 'Running', conditions: [cond('GuestReady', 'False', 'BootTimeout')] })], phase: 'Running', ready: 'False', reason: 'BootTimeout' },
    { name: 'running but one missing', vc: vc(3), nodes: [vn(0, { phase: 'Running' }), vn(1, { phase: 'Running' })], phase: 'Provisioning', ready: 'False', reason: 'Progressing' },
    { name: 'extra nodes beyond spec are not counted', vc: vc(1), nodes: [vn(0, { phase: 'Running', conditions: [guest()] }), vn(1, { phase: 'Failed' })], phase: 'Running', ready: 'True', reason: 'NodesRunning' },
    { name: 'a failed node fails the cluster', vc: vc(2), nodes: [vn(0, { phase: 'Running' }), vn(1, { phase: 'Failed' })], phase: 'Failed', ready: 'False', reason: 'NodesFailed' },
    { name: 'suspended as asked', vc: vc(2, {}, 'Suspended'), nodes: [vn(0, { phase: 'Suspended' }), vn(1, { phase: 'Suspended' })], phase: 'Suspended', ready: 'True', reason: 'NodesSuspended' },
    { name: 'stopped, never started', vc: vc(2, {}, 'Stopped'), nodes: [vn(0), vn(1, { phase: 'Stopped' })], phase: 'Stopped', ready: 'True', reason: 'NodesStopped' },
    { name: 'terminating', vc: vc(2, { deletionTimestamp: '2026-01-01T00:00:00Z' }), nodes: [vn(0, { phase: 'Running' })], phase: 'Terminating', ready: 'False', reason: 'Terminating' },
    { name: 'Placed=False on the VC gates Ready with its reason', vc: vc(1, {}, 'Running', [cond('Placed', 'False', 'Unschedulable', 'blade1: memory')]), nodes: [vn(0)], phase: 'Pending', ready: 'False', reason: 'Unschedulable' },
    { name: 'StorageReady=False on a node gates Ready', vc: vc(1), nodes: [vn(0, { phase: 'Running', conditions: [cond('StorageReady', 'False', 'SnapshotFailed')] })], phase: 'Running', ready: 'False', reason: 'SnapshotFailed' },
    { name: 'Running=False does not gate a stopped cluster', vc: vc(1, {}, 'Stopped', [cond('Running', 'False', 'Stopped')]), nodes: [vn(0, { phase: 'Stopped' })], phase: 'Stopped', ready: 'True', reason: 'NodesStopped' },
  ];
  for (const t of table) {
    it(t.name, () => {
      const s = summarizeCluster(t.vc, t.nodes);
      assert.equal(s.phase, t.phase);
      assert.equal(s.ready.status, t.ready);
      assert.equal(s.ready.reason, t.reason);
    });
  }

  it('lists nodes in index order with binding, ip and phase', () => {
    const a = vn(1, { phase: 'Running', host: 'blade2' });
    a.status = { ...a.status, ip: '10.10.1.3' };
    const s = summarizeCluster(vc(2), [a, vn(0)]);
    assert.deepEqual(s.nodes, [
      { name: 'stripes-0', phase: 'Pending' },
      { name: 'stripes-1', phase: 'Running', physicalNode: 'blade2', ip: '10.10.1.3' },
    ]);
  });
});
