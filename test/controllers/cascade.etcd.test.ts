// Cascading deletion (background, foreground, orphan) with the manager's garbage collector on a
// real etcd. A VirtualCluster owns VirtualNodes (made by the VC controller), a Volume and a
// Migration; the Volume carries a finalizer a test controller runs, so dependents go only after
// their own finalizers ran.

import assert from 'node:assert/strict';
import { startEtcd, type EtcdHarness } from '../../hack/lib/etcd-harness.js';
import type { Store } from '../../api/store/types.js';
import { API_VERSION, type ApiObject, type VirtualCluster } from '../../api/types.js';
import { ControllerManager } from '../../controllers/manager.js';
import { buildControllerSpecs } from '../../operator/registry.js';
import { silentLogger } from '../../controllers/log.js';
import { TransportCache } from '../../drivers/transport/transport-for.js';
import { controllerReference } from '../../controllers/gc/owner-references.js';
import { hasFinalizer, removeFinalizer } from '../../api/finalizers.js';
import { deleteWithPropagation, FOREGROUND_FINALIZER, type PropagationPolicy } from '../../controllers/gc/propagation.js';
import type { ControllerSpec } from '../../controllers/types.js';
import { openTestStore, virtualCluster, waitFor } from './helpers.js';

const VOLUME_FINALIZER = 'test.virtualinux.org/volume-cleanup';
const NS = 'cascade';
const DEPENDENT_KINDS = ['VirtualNode', 'Volume', 'Migration'];

describe('cascading delete on etcd', function () {
  this.timeout(60_000);
  let etcd: EtcdHarness;
  let store: Store;
  let manager: ControllerManager;
  const finalized: string[] = [];
  const log = silentLogger();

  const volumeCleanup: ControllerSpec = {
    name: 'test-volume-cleanup',
    forKind: 'Volume',
    async reconcile(key, ctx) {
      const v = await ctx.store.tryGet(key);
      if (v?.metadata.deletionTimestamp && hasFinalizer(v, VOLUME_FINALIZER)) {
        finalized.push(v.metadata.name);
        await removeFinalizer(ctx.store, key, VOLUME_FINALIZER);
      }
    },
  };

  before(async () => {
    etcd = await startEtcd();
    store = await openTestStore(etcd.url);
    manager = new ControllerManager({
      store, identity: 'cascade', leaseTtlSeconds: 3, log,
      specs: (cache) => [
        ...buildControllerSpecs({ cache, identity: 'cascade', log, transports: new TransportCache() }, undefined, ['virtualcluster', 'garbage-collector']),
        volumeCleanup,
      ],
    });
    await manager.start();
    await waitFor('leading', () => manager.isReady() && manager.isLeader());
  });
  after(async () => {
    await manager?.stop();
    await store?.close();
    await etcd?.stop();
  });

  async function dependents(vc: string): Promise<ApiObject[]> {
    const out: ApiObject[] = [];
    for (const kind of DEPENDENT_KINDS) {
      out.push(...(await store.list(kind, { namespace: NS })).items.filter((o) => o.metadata.name.startsWith(`${vc}-`)));
    }
    return out;
  }

  async function makeCluster(name: string): Promise<VirtualCluster> {
    const vc = await store.create(virtualCluster(name, 3, NS));
    const owner = controllerReference(vc);
    await store.create({
      apiVersion: API_VERSION, kind: 'Volume',
      metadata: { name: `${name}-original`, namespace: NS, ownerReferences: [owner], finalizers: [VOLUME_FINALIZER] },
      spec: { role: 'original', cluster: name, sizeGiB: 1, driver: 'qcow2' },
    });
    await store.create({
      apiVersion: API_VERSION, kind: 'Migration',
      metadata: { name: `${name}-mig`, namespace: NS, ownerReferences: [owner] },
      spec: { virtualNode: `${name}-0`, targetNode: 'blade2' },
    });
    await waitFor('3 VirtualNodes', async () => (await dependents(name)).length === 5);
    return vc;
  }

  const vcRef = (name: string) => ({ kind: 'VirtualCluster', namespace: NS, name });

  for (const policy of ['background', 'foreground'] as PropagationPolicy[]) {
    it(`${policy}: the VC and every dependent go, the Volume after its finalizer ran`, async () => {
      const name = `c-${policy}`;
      await makeCluster(name);
      const after = await deleteWithPropagation(store, vcRef(name), policy);
      if (policy === 'foreground') {
        assert.ok(after.metadata.deletionTimestamp, 'the owner waits for its dependents');
        assert.ok(hasFinalizer(after, FOREGROUND_FINALIZER));
      }
      await waitFor('everything gone', async () => (await dependents(name)).length === 0 && !(await store.tryGet(vcRef(name))), 20_000, 100);
      assert.ok(finalized.includes(`${name}-original`), 'the Volume finalizer ran');
    });
  }

  it('foreground: the owner is still there while a dependent is finalizing', async () => {
    const name = 'c-order';
    const vc = await makeCluster(name);
    // A dependent that only the test lets go.
    await store.create({
      apiVersion: API_VERSION, kind: 'Volume',
      metadata: { name: `${name}-held`, namespace: NS, ownerReferences: [controllerReference(vc)], finalizers: ['test.virtualinux.org/hold'] },
      spec: { role: 'swap', cluster: name, sizeGiB: 1, driver: 'qcow2' },
    });
    await deleteWithPropagation(store, vcRef(name), 'foreground');
    await waitFor('all but the held dependent gone', async () => (await dependents(name)).map((o) => o.metadata.name).join() === `${name}-held`, 20_000, 100);
    assert.ok(await store.tryGet(vcRef(name)), 'the owner waits');
    await removeFinalizer(store, { kind: 'Volume', namespace: NS, name: `${name}-held` }, 'test.virtualinux.org/hold');
    await waitFor('owner gone', async () => !(await store.tryGet(vcRef(name))), 20_000, 100);
  });

  it('a live owner and its dependents wake each other only for a deletion: a dependent made, an owner\'s finalizer added reconcile nothing of the other', async () => {
    const name = 'c-quiet';
    const vc = await makeCluster(name);
    const reconciles = (kind: string) => {
      const c = manager.activeControllers().find((x) => x.spec.name === `garbage-collector/${kind}`)!;
      return Object.values(c.counts).reduce((a, b) => a + b, 0);
    };
    const settled = async () => {
      // the collector's queues empty and its counts still for 300 ms
      let last = '';
      await waitFor('the collector idle', async () => {
        const now = DEPENDENT_KINDS.concat('VirtualCluster').map((k) => reconciles(k.toLowerCase())).join();
        const idle = now === last;
        last = now;
        await new Promise((r) => setTimeout(r, 300));
        return idle;
      }, 20_000, 0);
    };
    await settled();
    const before = { vc: reconciles('virtualcluster'), vn: reconciles('virtualnode'), volume: reconciles('volume') };
    // a dependent made: its own reconcile, not its live owner's
    await store.create({
      apiVersion: API_VERSION, kind: 'Volume',
      metadata: { name: `${name}-late`, namespace: NS, ownerReferences: [controllerReference(vc)] },
      spec: { role: 'swap', cluster: name, sizeGiB: 1, driver: 'qcow2' },
    });
    // another controller's finalizer added to the owner: no reconcile of it nor of its dependents
    // (the collector reads only its own two finalizers: gcSignature)
    const cur = await store.get(vcRef(name));
    await store.update({ ...cur, metadata: { ...cur.metadata, finalizers: [...(cur.metadata.finalizers ?? []), 'test.virtualinux.org/quiet'] } });
    await settled();
    assert.deepEqual(
      { vc: reconciles('virtualcluster') - before.vc, vn: reconciles('virtualnode') - before.vn, volume: reconciles('volume') - before.volume },
      { vc: 0, vn: 0, volume: 1 },
    );
    // and a deletion still reaches both ways: the VC's dependents go, then the VC
    await removeFinalizer(store, vcRef(name), 'test.virtualinux.org/quiet');
    await deleteWithPropagation(store, vcRef(name), 'foreground');
    await waitFor('everything gone', async () => (await dependents(name)).length === 0 && !(await store.tryGet(vcRef(name))), 20_000, 100);
  });

  it('orphan: the VC goes, its dependents stay without a reference to it', async () => {
    const name = 'c-orphan';
    const vc = await makeCluster(name);
    await deleteWithPropagation(store, vcRef(name), 'orphan');
    await waitFor('owner gone', async () => !(await store.tryGet(vcRef(name))), 20_000, 100);
    const deps = await dependents(name);
    assert.equal(deps.length, 5, 'dependents kept');
    for (const d of deps) assert.ok(!(d.metadata.ownerReferences ?? []).some((r) => r.uid === vc.metadata.uid), `${d.metadata.name} still references the VC`);
    // Nothing deletes them later either.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await dependents(name)).length, 5);
  });

  it('a dependent of a re-created owner of the same name is collected (uid mismatch)', async () => {
    const name = 'c-recreate';
    const old = await store.create(virtualCluster(name, 0, NS));
    await store.create({
      apiVersion: API_VERSION, kind: 'Migration',
      metadata: { name: `${name}-stale`, namespace: NS, ownerReferences: [controllerReference(old)] },
      spec: { virtualNode: 'x', targetNode: 'y' },
    });
    // Delete and re-create while the manager may not even have seen the first one.
    await store.delete(vcRef(name));
    await store.create(virtualCluster(name, 0, NS));
    await waitFor('stale dependent gone', async () => !(await store.tryGet({ kind: 'Migration', namespace: NS, name: `${name}-stale` })), 20_000, 100);
    assert.ok(await store.tryGet(vcRef(name)), 'the new owner is untouched');
  });
});
