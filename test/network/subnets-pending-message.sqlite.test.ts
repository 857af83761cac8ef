// network/subnets writes a pending VC's NetworkReady message (the VMs whose routes are not in place
// yet) again at most once per PENDING_MESSAGE_MS while only that list shrinks, and the turn to
// True at once. The real controller's reconcile on the embedded store; the VC's writes counted
// from its watch.

import assert from 'node:assert/strict';
import type { ObjectRef } from '../../api/store/types.js';
import { API_VERSION, type ApiObject, type VirtualCluster, type VirtualNode } from '../../api/types.js';
import { getCondition } from '../../api/conditions.js';
import { silentLogger } from '../../controllers/log.js';
import type { CacheReader, ReconcileContext, ReconcileResult } from '../../controllers/types.js';
import { AppliedNetworks, networkSubnetController, PENDING_MESSAGE_MS } from '../../reconcilers/network/controller.js';
import { recordHistory } from '../controllers/history.js';
import { tempSqliteStore, virtualCluster, type TempSqliteStore } from '../controllers/helpers.js';

const NS = 'default';

function vm(index: number, node: string): VirtualNode {
  return {
    apiVersion: API_VERSION, kind: 'VirtualNode',
    metadata: { name: `c-${index}`, namespace: NS, labels: { 'virtualinux.org/cluster': 'c' } },
    spec: { cluster: 'c', index, vcpus: 1, memoryMiB: 256, physicalNode: node },
  } as VirtualNode;
}

/** A cache reader over the store's objects as they are now. */
async function snapshot(t: TempSqliteStore): Promise<CacheReader> {
  const objs: ApiObject[] = [...(await t.store.list('VirtualCluster')).items, ...(await t.store.list('VirtualNode')).items];
  return {
    get: <T extends ApiObject>(r: ObjectRef) => objs.find((o) => o.kind === r.kind && o.metadata.name === r.name && o.metadata.namespace === r.namespace) as T | undefined,
    list: <T extends ApiObject>(kind: string) => objs.filter((o) => o.kind === kind) as T[],
  };
}

describe('network/subnets: a pending VC\'s NetworkReady message', function () {
  this.timeout(30_000);
  let t: TempSqliteStore;
  beforeEach(() => {
    t = tempSqliteStore();
  });
  afterEach(async () => {
    await t.close();
  });

  it('is written again at most once per PENDING_MESSAGE_MS while only the pending list shrinks; True is written at once', async () => {
    const applied = new AppliedNetworks();
    const spec = networkSubnetController({ transports: { get: () => { throw new Error('unused'); } } }, applied);
    const vc: VirtualCluster = { ...virtualCluster('c', 3, NS), spec: { ...virtualCluster('c', 3, NS).spec!, network: { subnet: '10.77.0.0/29' } } };
    await t.store.create(vc);
    for (const [i, n] of [[0, 'n1'], [1, 'n2'], [2, 'n3']] as const) await t.store.create(vm(i, n));
    const h = recordHistory(t.store, ['VirtualCluster'], (await t.store.revision()) + 1);
    const reconcile = async (): Promise<ReconcileResult> => {
      const ctx: ReconcileContext = { store: t.store, cache: await snapshot(t), events: { record() {} }, log: silentLogger(), signal: new AbortController().signal };
      return spec.reconcile({ kind: 'VirtualCluster', namespace: NS, name: 'c' }, ctx);
    };
    const ready = async () => getCondition((await t.store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: NS, name: 'c' })).status?.conditions, 'NetworkReady');
    const writes = () => h.events.filter((e) => e.type === 'MODIFIED').length;
    try {
      await reconcile();
      await new Promise((r) => setTimeout(r, 200)); // the watch's events
      assert.equal((await ready())?.reason, 'RoutesPending');
      assert.match((await ready())!.message, /c-0, c-1, c-2/);
      assert.equal(writes(), 1, 'the subnet and RoutesPending');

      applied.set('n1', ['default.c-0']);
      const held = await reconcile();
      assert.ok(held && held.requeueAfterMs > 0 && held.requeueAfterMs <= PENDING_MESSAGE_MS, `requeued for the rest of the spacing (${JSON.stringify(held)})`);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(writes(), 1, 'a shorter list within the spacing is not written');
      assert.match((await ready())!.message, /c-0, c-1, c-2/);

      applied.set('n2', ['default.c-1']);
      applied.set('n3', ['default.c-2']);
      await reconcile();
      await new Promise((r) => setTimeout(r, 200));
      assert.equal((await ready())?.status, 'True', 'every route in place: written within the spacing');
      assert.equal(writes(), 2);
    } finally {
      h.stop();
    }
  });

  it('after the spacing, the shorter list is written', async () => {
    const applied = new AppliedNetworks();
    const spec = networkSubnetController({ transports: { get: () => { throw new Error('unused'); } } }, applied);
    const vc: VirtualCluster = { ...virtualCluster('c', 2, NS), spec: { ...virtualCluster('c', 2, NS).spec!, network: { subnet: '10.77.0.0/29' } } };
    await t.store.create(vc);
    for (const [i, n] of [[0, 'n1'], [1, 'n2']] as const) await t.store.create(vm(i, n));
    const reconcile = async (): Promise<ReconcileResult> => {
      const ctx: ReconcileContext = { store: t.store, cache: await snapshot(t), events: { record() {} }, log: silentLogger(), signal: new AbortController().signal };
      return spec.reconcile({ kind: 'VirtualCluster', namespace: NS, name: 'c' }, ctx);
    };
    await reconcile();
    applied.set('n1', ['default.c-0']);
    const held = await reconcile();
    await new Promise((r) => setTimeout(r, held!.requeueAfterMs + 50));
    await reconcile();
    const c = getCondition((await t.store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: NS, name: 'c' })).status?.conditions, 'NetworkReady');
    assert.equal(c?.reason, 'RoutesPending');
    assert.equal(c?.message, 'routes and rules not yet in place for c-1');
  });
});
