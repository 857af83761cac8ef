// SIMULATION (a sim host): a new VM's first runtime pass adds the runtime's finalizer and goes on
// with the object as written, in the same reconcile: it returned after the finalizer and waited for
// its own update event, one more turn at the back of a queue of 10,000 VMs (~5 min a turn at that
// size, hack/bench-scale session 11).

import assert from 'node:assert/strict';
import { setCondition } from '../../api/conditions.js';
import { hasFinalizer } from '../../api/finalizers.js';
import type { ObjectRef } from '../../api/store/types.js';
import type { ApiObject, PhysicalNode, VirtualCluster, VirtualNode } from '../../api/types.js';
import { silentLogger } from '../../controllers/log.js';
import type { CacheReader, ReconcileContext } from '../../controllers/types.js';
import { SimWorld } from '../../drivers/transport/sim-host.js';
import { SimTransport } from '../../drivers/transport/sim-transport.js';
import { RUNTIME_FINALIZER, runtimeController } from '../../reconcilers/runtime/controller.js';
import { tempSqliteStore, type TempSqliteStore } from '../controllers/helpers.js';
import { physicalNode, virtualCluster } from '../placement/fixtures.js';

describe('runtime: a new VM\'s first pass (sim host)', function () {
  this.timeout(30_000);
  let tmp: TempSqliteStore;
  beforeEach(() => { tmp = tempSqliteStore(5); });
  afterEach(async () => { await tmp.close(); });

  it('adds the finalizer and writes the VM\'s status in one reconcile', async () => {
    const store = tmp.store;
    const pn0 = physicalNode('n1', 8, 8192);
    const pn = await store.create<PhysicalNode>({ ...pn0, spec: { ...pn0.spec!, hypervisor: 'sim', transport: 'sim', storageRoot: '/san' } });
    await store.updateStatus<PhysicalNode>({ ...pn, status: { conditions: setCondition(undefined, { type: 'Ready', status: 'True', reason: 'Probed', message: '' }, 0) } });
    await store.create<VirtualCluster>(virtualCluster('vc', 1, 1, 128));
    await store.create<VirtualNode>({ apiVersion: 'virtualinux.org/v1alpha1', kind: 'VirtualNode', metadata: { name: 'vc-0', namespace: 'default', labels: { 'virtualinux.org/cluster': 'vc' } },
      spec: { cluster: 'vc', index: 0, physicalNode: 'n1', vcpus: 1, memoryMiB: 128 } } as VirtualNode);
    // The cache: what the store holds now (read once, as an informer would have it).
    const objects: ApiObject[] = [];
    for (const kind of ['PhysicalNode', 'VirtualCluster', 'VirtualNode']) objects.push(...(await store.list(kind)).items);
    const cache: CacheReader = {
      get: <T extends ApiObject>(r: ObjectRef) => objects.find((o) => o.kind === r.kind && o.metadata.name === r.name && (r.namespace === undefined || o.metadata.namespace === r.namespace)) as T | undefined,
      list: <T extends ApiObject>(k: string) => objects.filter((o) => o.kind === k) as T[],
    };
    const world = new SimWorld({ startMs: 0 });
    const spec = runtimeController(cache, { transports: { get: (p: PhysicalNode) => new SimTransport(world.host(p.metadata.name, { cores: 8, memoryMiB: 8192, storageRoot: '/san' })) } });
    const ctx: ReconcileContext = { store, cache, events: { record() {} }, log: silentLogger(), signal: new AbortController().signal };
    const key = { kind: 'VirtualNode', namespace: 'default', name: 'vc-0' };
    assert.equal(hasFinalizer(cache.get<VirtualNode>(key)!, RUNTIME_FINALIZER), false);
    await spec.reconcile(key, ctx);
    const after = await store.get<VirtualNode>(key);
    assert.ok(hasFinalizer(after, RUNTIME_FINALIZER), 'the finalizer');
    assert.ok(after.status?.conditions?.some((c) => c.type === 'Running'), `a status written in the same pass: ${JSON.stringify(after.status)}`);
  });
});
