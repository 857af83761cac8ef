// network/subnets is woken by network/hosts (AppliedNetworks.onAdded) when a node puts VMs' routes
// in place, instead of polling every VC with routes pending every 2 s (hack/bench-scale): the
// VCs of exactly the newly applied VMs are queued, once each.

import assert from 'node:assert/strict';
import type { ObjectRef } from '../../api/store/types.js';
import { API_VERSION, type ApiObject, type VirtualNode } from '../../api/types.js';
import type { CacheReader } from '../../controllers/types.js';
import { AppliedNetworks, networkSubnetController } from '../../reconcilers/network/controller.js';

function vm(namespace: string, cluster: string, index: number): VirtualNode {
  return {
    apiVersion: API_VERSION, kind: 'VirtualNode', metadata: { name: `${cluster}-${index}`, namespace },
    spec: { cluster, index, vcpus: 1, memoryMiB: 256 },
  } as VirtualNode;
}

function cacheOf(objs: ApiObject[]): CacheReader {
  return {
    get: <T extends ApiObject>(r: ObjectRef) => objs.find((o) => o.kind === r.kind && o.metadata.name === r.name && o.metadata.namespace === r.namespace) as T | undefined,
    list: <T extends ApiObject>(kind: string) => objs.filter((o) => o.kind === kind) as T[],
  };
}

describe('network/subnets woken when routes are in place', () => {
  it('AppliedNetworks tells only the VMs a node newly has in place', () => {
    const applied = new AppliedNetworks();
    const told: string[][] = [];
    const stop = applied.onAdded((host, vms) => told.push([host, ...vms]));
    applied.set('n1', ['a.x-0', 'a.x-1']);
    applied.set('n1', ['a.x-0', 'a.x-1']);
    applied.set('n1', ['a.x-1', 'a.y-0']);
    stop();
    applied.set('n2', ['a.z-0']);
    assert.deepEqual(told, [['n1', 'a.x-0', 'a.x-1'], ['n1', 'a.y-0']]);
    assert.equal(applied.has('n2', 'a.z-0'), true);
  });

  it('queues the VC of each newly applied VM once (a VC name with a dot too), nothing for unknown domains', () => {
    const applied = new AppliedNetworks();
    const cache = cacheOf([vm('lab', 'web', 0), vm('lab', 'web', 1), vm('lab', 'db.v2', 0), vm('other', 'web', 0)]);
    const spec = networkSubnetController({ transports: { get: () => { throw new Error('unused'); } } }, applied, cache);
    assert.equal(spec.sources?.length, 1);
    const queued: ObjectRef[] = [];
    const stop = spec.sources![0]!((r) => queued.push(r));
    applied.set('n1', ['lab.web-0', 'lab.web-1', 'lab.db.v2-0', 'lab.gone-0']);
    stop();
    applied.set('n2', ['other.web-0']);
    assert.deepEqual(queued, [
      { kind: 'VirtualCluster', namespace: 'lab', name: 'web' },
      { kind: 'VirtualCluster', namespace: 'lab', name: 'db.v2' },
    ]);
  });
});
