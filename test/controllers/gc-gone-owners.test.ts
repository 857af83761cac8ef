// The garbage collector confirms a gone owner with the store once per owner, not once per
// dependent: a uid is never used again, so the other dependents of an owner the store said is
// gone are deleted without asking again (a VirtualCluster deleted in the background: its VMs,
// Volumes and Migrations each read it before, hack/bench-scale). An owner made anew under the
// same name (another uid) still keeps the dependents that reference the new one. The store is
// real (the embedded SQLite backend), the cache a real SharedCache over it.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import type { ObjectRef, Store } from '../../api/store/types.js';
import { API_VERSION, type ApiObject } from '../../api/types.js';
import { SharedCache } from '../../controllers/cache.js';
import { GoneOwners, garbageCollectorSpecs } from '../../controllers/gc/garbage-collector.js';
import { controllerReference } from '../../controllers/gc/owner-references.js';
import { silentLogger } from '../../controllers/log.js';
import type { ReconcileContext } from '../../controllers/types.js';
import { eventually } from '../placement/fixtures.js';

describe('garbage collector: an owner confirmed gone is read once', function () {
  this.timeout(30_000);
  let dir: string;
  let store: SqliteStore;
  let cache: SharedCache;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vl-gc-gone-'));
    store = new SqliteStore(join(dir, 'store.db'), { pollIntervalMs: 5 });
    cache = new SharedCache(store, { log: silentLogger() });
    for (const k of ['VirtualCluster', 'VirtualNode']) cache.informer(k);
    cache.start();
    await cache.waitForSync();
  });
  afterEach(async () => {
    cache.stop();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const vcRef = { kind: 'VirtualCluster', name: 'a', namespace: 'default' };
  const vmRef = (i: number): ObjectRef => ({ kind: 'VirtualNode', name: `a-${i}`, namespace: 'default' });
  const vm = (i: number, owner: ApiObject): ApiObject => ({
    apiVersion: API_VERSION, kind: 'VirtualNode', metadata: { name: `a-${i}`, namespace: 'default', ownerReferences: [controllerReference(owner)] },
  });

  it('deletes 4 dependents of a gone owner with one store read of it; keeps those of its successor', async () => {
    const owner = await store.create<ApiObject>({ apiVersion: API_VERSION, kind: 'VirtualCluster', metadata: { name: 'a', namespace: 'default' } });
    for (let i = 0; i < 4; i++) await store.create(vm(i, owner));
    await store.delete(vcRef);
    // The owner made again under its name (a new uid): a dependent of the new one is kept.
    const again = await store.create<ApiObject>({ apiVersion: API_VERSION, kind: 'VirtualCluster', metadata: { name: 'a', namespace: 'default' } });
    await store.create(vm(9, again));
    await eventually(async () => (cache.list('VirtualNode').length === 5 && cache.get(vcRef)?.metadata.uid === again.metadata.uid ? true : undefined), 5_000, 'the cache');

    let ownerReads = 0;
    const counting: Store = Object.create(store, {
      tryGet: {
        value: async (ref: ObjectRef) => {
          if (ref.kind === 'VirtualCluster') ownerReads++;
          return store.tryGet(ref);
        },
      },
    });
    const gc = garbageCollectorSpecs(cache, ['VirtualCluster', 'VirtualNode']).find((s) => s.forKind === 'VirtualNode')!;
    const ctx: ReconcileContext = { store: counting, cache, events: { record: () => undefined }, log: silentLogger(), signal: new AbortController().signal };
    for (const i of [0, 1, 2, 3, 9]) await gc.reconcile(vmRef(i), ctx);
    for (let i = 0; i < 4; i++) assert.equal(await store.tryGet(vmRef(i)), undefined, `a-${i} deleted: its owner is gone`);
    assert.ok(await store.tryGet(vmRef(9)), 'a-9 kept: its owner (same name, new uid) exists');
    assert.equal(ownerReads, 1, 'the gone owner was read from the store once, not once per dependent');
  });

  it('GoneOwners forgets the oldest uid beyond its bound', () => {
    const g = new GoneOwners(2);
    g.add('u1');
    g.add('u2');
    g.add('u2');
    assert.ok(g.has('u1') && g.has('u2'));
    g.add('u3');
    assert.ok(!g.has('u1') && g.has('u2') && g.has('u3'));
  });
});
