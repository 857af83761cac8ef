// The VirtualCluster controller writes its status fields over the stored VC: another controller's
// status write since the cache saw the VC (placement, network, storage all write the VC's status)
// no longer fails the reconcile into a backoff (hack/bench-scale: a third of the VC controller's
// reconciles failed so at 1,000 VMs), and what the other wrote is kept. A VC whose spec changed
// since is not written with the older generation.

import assert from 'node:assert/strict';
import type { ApiObject, VirtualCluster, VirtualNode } from '../../api/types.js';
import type { ObjectRef } from '../../api/store/types.js';
import type { CacheReader, ReconcileContext } from '../../controllers/types.js';
import { silentLogger } from '../../controllers/log.js';
import { reconcileVirtualCluster, STATUS_COALESCE_MS } from '../../reconcilers/virtualcluster/controller.js';
import { planVirtualNodes } from '../../reconcilers/virtualcluster/plan.js';
import { tempSqliteStore, virtualCluster, type TempSqliteStore } from '../controllers/helpers.js';

describe('virtualcluster controller: status over the stored VC', () => {
  let tmp: TempSqliteStore;
  beforeEach(() => (tmp = tempSqliteStore(5)));
  afterEach(() => tmp.close());

  /** A cache frozen at `vc` (older than the store) with no VirtualNodes yet. */
  const ctxWith = (vc: VirtualCluster): ReconcileContext => {
    const cache: CacheReader = {
      get: <T extends ApiObject>(ref: ObjectRef) => (ref.kind === 'VirtualCluster' && ref.name === vc.metadata.name ? vc as unknown as T : undefined),
      list: <T extends ApiObject>() => [] as T[],
    };
    return { store: tmp.store, cache, events: { record() {} }, log: silentLogger(), signal: new AbortController().signal };
  };
  const ref = { kind: 'VirtualCluster', name: 'c', namespace: 'default' };

  it('writes phase, nodes and Ready over a status another controller wrote since the cache saw the VC', async () => {
    const seen = await tmp.store.create<VirtualCluster>(virtualCluster('c', 2));
    await tmp.store.updateStatus<VirtualCluster>({ ...seen, status: { subnet: '10.9.0.0/29' } }); // another writer
    await reconcileVirtualCluster(ref, ctxWith(seen));
    const vc = await tmp.store.get<VirtualCluster>(ref);
    assert.equal(vc.status?.subnet, '10.9.0.0/29', 'the other writer\'s field is kept');
    assert.equal(vc.status?.observedGeneration, seen.metadata.generation);
    assert.ok(vc.status?.phase, 'phase written');
    assert.ok(vc.status?.conditions?.some((c) => c.type === 'Ready'), 'Ready written');
    assert.equal((await tmp.store.list<VirtualNode>('VirtualNode')).items.length, 2, 'the VMs were made');
  });

  it('coalesces: a status change within STATUS_COALESCE_MS of the last write waits, then is written once', async () => {
    const lastWrite = new Map<string, number>();
    const created = await tmp.store.create<VirtualCluster>(virtualCluster('c', 2));
    assert.equal(await reconcileVirtualCluster(ref, ctxWith(created), lastWrite), undefined, 'the first write is made at once');
    const first = await tmp.store.get<VirtualCluster>(ref);
    // The cache now holds the written VC, and its VMs changed: within the window, nothing is written.
    const vms = (await tmp.store.list<VirtualNode>('VirtualNode')).items.map((v) => ({ ...v, status: { phase: 'Starting' as const } }));
    const ctx = ctxWith(first);
    ctx.cache.list = <T extends ApiObject>() => vms as unknown as T[];
    assert.ok(lastWrite.has('default/c'));
    lastWrite.set('default/c', performance.now()); // as if just written, however slow this machine is
    const r = await reconcileVirtualCluster(ref, ctx, lastWrite);
    assert.ok(r && r.requeueAfterMs > 0 && r.requeueAfterMs <= STATUS_COALESCE_MS, `requeued within the window: ${JSON.stringify(r)}`);
    assert.equal((await tmp.store.get<VirtualCluster>(ref)).metadata.resourceVersion, first.metadata.resourceVersion, 'nothing written yet');
    await new Promise((res) => setTimeout(res, r!.requeueAfterMs));
    assert.equal(await reconcileVirtualCluster(ref, ctx, lastWrite), undefined);
    const vc = await tmp.store.get<VirtualCluster>(ref);
    assert.deepEqual(vc.status?.nodes?.map((n) => n.phase), ['Starting', 'Starting'], 'written after the window');
  });

  it('makes a VC\'s VirtualNodes in one store batch; one made meanwhile is skipped, the others made one each', async () => {
    const vc = await tmp.store.create<VirtualCluster>(virtualCluster('c', 3));
    let batches = 0;
    let creates = 0;
    const store = tmp.store;
    const counting = Object.create(store, {
      // creates only (a status write is a one-operation batch too)
      batch: { value: (...a: Parameters<typeof store.batch>) => { if (a[0].every((o) => o.op === 'create')) batches++; return store.batch(...a); } },
      create: { value: (...a: Parameters<typeof store.create>) => { creates++; return store.create(...a); } },
    }) as typeof store;
    const ctx = { ...ctxWith(vc), store: counting };
    await reconcileVirtualCluster(ref, ctx);
    assert.deepEqual((await tmp.store.list<VirtualNode>('VirtualNode')).items.map((v) => v.metadata.name).sort(), ['c-0', 'c-1', 'c-2']);
    assert.deepEqual([batches, creates], [1, 0], 'one batch, no create each');
    // Another writer made d-1 of a second VC since the (frozen, empty) cache saw it: the batch
    // fails as a whole and the rest are made one each.
    const other = await tmp.store.create<VirtualCluster>(virtualCluster('d', 3));
    await tmp.store.create<VirtualNode>(planVirtualNodes(other, []).create[1]!);
    [batches, creates] = [0, 0];
    await reconcileVirtualCluster({ ...ref, name: 'd' }, { ...ctxWith(other), store: counting });
    assert.deepEqual((await tmp.store.list<VirtualNode>('VirtualNode')).items.map((v) => v.metadata.name).filter((n) => n.startsWith('d-')).sort(), ['d-0', 'd-1', 'd-2']);
    assert.deepEqual([batches, creates], [1, 3], 'the batch, then one create each (d-1 found made)');
  });

  it('does not stamp an older generation over a VC whose spec changed since', async () => {
    const seen = await tmp.store.create<VirtualCluster>(virtualCluster('c', 2));
    const newer = await tmp.store.update<VirtualCluster>({ ...seen, spec: { ...seen.spec!, nodes: 3 } });
    assert.notEqual(newer.metadata.generation, seen.metadata.generation);
    await reconcileVirtualCluster(ref, ctxWith(seen));
    const vc = await tmp.store.get<VirtualCluster>(ref);
    assert.equal(vc.status?.observedGeneration, undefined, 'nothing claimed for a spec not seen');
  });
});
