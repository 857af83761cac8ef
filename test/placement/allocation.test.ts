// The allocation controller reading the informer caches: BoundIndex follows bindings as they change,
// and a cache that lags the store never makes the controller lower a node's allocation below
// what is bound to it (the store is real: the embedded SQLite backend; the cache is a real
// SharedCache over it, stopped to make it lag).

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import type { ObjectRef } from '../../api/store/types.js';
import { API_VERSION, type ApiObject, type Migration, type PhysicalNode, type VirtualNode } from '../../api/types.js';
import { SharedCache } from '../../controllers/cache.js';
import { silentLogger } from '../../controllers/log.js';
import type { ReconcileContext } from '../../controllers/types.js';
import { computeAllocation, MIGRATION_APPLIED } from '../../reconcilers/placement/allocation.js';
import { BoundIndex } from '../../reconcilers/placement/allocation-index.js';
import { allocationController } from '../../reconcilers/placement/controller.js';
import { vmUsage, ZERO } from '../../reconcilers/placement/plan-binding.js';
import { eventually, physicalNode, virtualCluster, virtualNode } from './fixtures.js';

describe('placement/allocation over the informer caches', function () {
  this.timeout(30_000);
  let dir: string;
  let store: SqliteStore;
  let cache: SharedCache;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vl-allocation-'));
    store = new SqliteStore(join(dir, 'store.db'), { pollIntervalMs: 5 });
    cache = new SharedCache(store, { log: silentLogger() });
    for (const k of ['PhysicalNode', 'VirtualNode', 'Migration']) cache.informer(k);
  });
  afterEach(async () => {
    cache.stop();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const vc = virtualCluster('s', 3, 2, 1024);
  const pnRef = (name: string) => ({ kind: 'PhysicalNode', name });
  const vnRef = (i: number) => ({ kind: 'VirtualNode', name: `s-${i}`, namespace: 'default' });
  const ctx = (): ReconcileContext => ({
    store, cache, events: { record: () => undefined }, log: silentLogger(), signal: new AbortController().signal,
  });
  /** Waits until the cache holds what the store holds (an informer's revision only moves with its kind). */
  const caughtUp = async () => {
    const versions = (objs: ApiObject[]) => objs.map((o) => `${o.metadata.name}@${o.metadata.resourceVersion}`).sort().join();
    await eventually(async () => {
      for (const k of cache.kinds()) {
        if (versions(cache.list(k)) !== versions((await store.list(k)).items)) return undefined;
      }
      return true;
    }, 5_000, 'the cache');
  };
  async function bind(i: number, node: string | undefined): Promise<void> {
    const vn = await store.get<VirtualNode>(vnRef(i));
    await store.update<VirtualNode>({ ...vn, spec: { ...vn.spec!, physicalNode: node } });
  }
  /** computeAllocation over the store: what every node's allocation must be. */
  async function truth(): Promise<Record<string, number>> {
    const vns = (await store.list<VirtualNode>('VirtualNode')).items;
    const migs = (await store.list<Migration>('Migration')).items;
    return Object.fromEntries(['blade1', 'blade2'].map((n) => [n, computeAllocation(n, vns, migs).vms]));
  }

  it('BoundIndex gives each node the allocation computeAllocation gives over the store, as bindings change', async () => {
    const index = new BoundIndex(cache);
    cache.start();
    await cache.waitForSync();
    for (const n of ['blade1', 'blade2']) await store.create(physicalNode(n, 8, 8192));
    for (let i = 0; i < 3; i++) await store.create(virtualNode(vc, i));
    const seen = async (): Promise<Record<string, number>> => {
      await caughtUp();
      const migs = cache.list<Migration>('Migration');
      const got = Object.fromEntries(['blade1', 'blade2'].map((n) => [n, index.allocation(n, migs).vms]));
      assert.deepEqual(got, await truth());
      // The same from the index's own Migrations onto each node.
      assert.deepEqual(Object.fromEntries(['blade1', 'blade2'].map((n) => [n, index.allocation(n).vms])), got);
      return got;
    };
    assert.deepEqual(await seen(), { blade1: 0, blade2: 0 });
    await bind(0, 'blade1');
    await bind(1, 'blade1');
    await bind(2, 'blade2');
    assert.deepEqual(await seen(), { blade1: 2, blade2: 1 });
    await bind(1, 'blade2'); // re-bound (a remap, or a migration applied)
    assert.deepEqual(await seen(), { blade1: 1, blade2: 2 });
    await bind(2, undefined); // unbound
    assert.deepEqual(await seen(), { blade1: 1, blade2: 1 });
    // A migration of s-0 onto blade2 reserves room there until it is applied or Failed.
    const m = await store.create<Migration>({
      apiVersion: API_VERSION, kind: 'Migration', metadata: { name: 'm', namespace: 'default' },
      spec: { virtualNode: 's-0', targetNode: 'blade2' },
    });
    assert.deepEqual(await seen(), { blade1: 1, blade2: 2 });
    await store.updateStatus<Migration>({ ...m, status: { phase: 'Failed' } });
    assert.deepEqual(await seen(), { blade1: 1, blade2: 1 });
    await store.delete(vnRef(0));
    assert.deepEqual(await seen(), { blade1: 0, blade2: 1 });
  });

  it('never lowers a node\'s allocation from a cache that has not seen the binding; frees once it has', async () => {
    const ctl = allocationController(cache);
    cache.start();
    await store.create(physicalNode('blade1', 8, 8192));
    await store.create(virtualNode(vc, 0));
    await store.create(virtualNode(vc, 1));
    await caughtUp();
    cache.stop(); // from here on the cache lags the store

    // A binding as placement writes it: the VM and the node's allocation in one batch.
    const pn = await store.get<PhysicalNode>(pnRef('blade1'));
    const vns = await Promise.all([0, 1].map((i) => store.get<VirtualNode>(vnRef(i))));
    const two = vns.reduce((u, v) => ({ cores: u.cores + vmUsage(v).cores, memoryMiB: u.memoryMiB + vmUsage(v).memoryMiB, vms: u.vms + 1 }), ZERO);
    await store.batch([
      ...vns.map((v) => ({ op: 'update' as const, object: { ...v, spec: { ...v.spec!, physicalNode: 'blade1' } } })),
      { op: 'updateStatus', object: { ...pn, status: { ...pn.status, allocated: two } } },
    ]);
    const allocated = async () => (await store.get<PhysicalNode>(pnRef('blade1'))).status?.allocated;

    // The cache sees neither the binding nor the new allocation: it agrees with itself, no write.
    assert.equal(await ctl.reconcile(pnRef('blade1'), ctx()), undefined);
    assert.deepEqual(await allocated(), two);
    // The cache sees the new allocation but still not the bound VMs (they arrive on another watch).
    const fresh = await store.get<PhysicalNode>(pnRef('blade1'));
    const pnAhead: ReconcileContext = {
      ...ctx(),
      cache: {
        get: <T extends ApiObject>(ref: ObjectRef) => (ref.kind === 'PhysicalNode' ? fresh as unknown as T : cache.get<T>(ref)),
        list: <T extends ApiObject>(kind: string) => cache.list<T>(kind),
      },
    };
    const first = await ctl.reconcile(pnRef('blade1'), pnAhead);
    assert.deepEqual(await allocated(), two, 'the binding the cache has not seen is still allocated');
    assert.deepEqual(first, { requeueAfterMs: 200 }, 'waits once for the cache');
    assert.equal(await ctl.reconcile(pnRef('blade1'), pnAhead), undefined, 'then reads the store');
    assert.deepEqual(await allocated(), two, 'the binding the cache has not seen is still allocated');

    // Once the cache holds the binding and a VM goes, the node's room is freed from the cache.
    cache.start();
    await store.delete(vnRef(1));
    await caughtUp();
    assert.equal(await ctl.reconcile(pnRef('blade1'), ctx()), undefined);
    assert.deepEqual(await allocated(), vmUsage(vns[0]!));
    assert.deepEqual(await truth(), { blade1: 1, blade2: 0 });
  });

  it('nodes whose cache lags share one store list of the VMs when it is as new as each needs', async () => {
    const ctl = allocationController(cache);
    cache.start();
    for (const n of ['blade1', 'blade2']) await store.create(physicalNode(n, 8, 8192));
    for (const i of [0, 1, 2]) await store.create(virtualNode(vc, i));
    await caughtUp();
    cache.stop(); // from here on the cache lags the store
    let lists = 0;
    const counting = Object.create(store, {
      list: { value: (kind: string, o?: object) => { if (kind === 'VirtualNode') lists++; return store.list(kind, o); } },
    }) as SqliteStore;
    // Bindings as placement writes them: VMs and the node's allocation in one batch.
    const bindBatch = async (node: string, is: number[]) => {
      const pn = await store.get<PhysicalNode>(pnRef(node));
      const vns = await Promise.all(is.map((i) => store.get<VirtualNode>(vnRef(i))));
      const used = vns.reduce((u, v) => ({ cores: u.cores + vmUsage(v).cores, memoryMiB: u.memoryMiB + vmUsage(v).memoryMiB, vms: u.vms + 1 }), pn.status?.allocated ?? ZERO);
      await store.batch([
        ...vns.map((v) => ({ op: 'update' as const, object: { ...v, spec: { ...v.spec!, physicalNode: node } } })),
        { op: 'updateStatus', object: { ...pn, status: { ...pn.status, allocated: used } } },
      ]);
    };
    await bindBatch('blade1', [0]);
    await bindBatch('blade2', [1]);
    // The cache sees the nodes as the store has them, not the bound VMs.
    const ahead = async (): Promise<ReconcileContext> => {
      const fresh = new Map((await store.list<PhysicalNode>('PhysicalNode')).items.map((p) => [p.metadata.name, p]));
      return {
        ...ctx(), store: counting,
        cache: {
          get: <T extends ApiObject>(ref: ObjectRef) => (ref.kind === 'PhysicalNode' ? fresh.get(ref.name) as unknown as T : cache.get<T>(ref)),
          list: <T extends ApiObject>(kind: string) => (kind === 'PhysicalNode' ? [...fresh.values()] as unknown as T[] : cache.list<T>(kind)),
        },
      };
    };
    let c = await ahead();
    for (const n of ['blade1', 'blade2']) assert.deepEqual(await ctl.reconcile(pnRef(n), c), { requeueAfterMs: 200 }, `${n} waits once for the cache`);
    await Promise.all(['blade1', 'blade2'].map((n) => ctl.reconcile(pnRef(n), c)));
    assert.equal(lists, 1, 'both nodes read the VMs from one store list');
    assert.deepEqual(await truth(), { blade1: 1, blade2: 1 });
    // A binding written after that list: the node needing it gets a new list.
    await bindBatch('blade1', [2]);
    c = await ahead();
    assert.deepEqual(await ctl.reconcile(pnRef('blade1'), c), { requeueAfterMs: 200 });
    assert.equal(await ctl.reconcile(pnRef('blade1'), c), undefined);
    assert.equal(lists, 2, 'a list older than the node\'s write is not used');
    assert.equal((await store.get<PhysicalNode>(pnRef('blade1'))).status?.allocated?.vms, 2, 'the binding the cache has not seen stays allocated');
  });

  it('keeps a target\'s room when the cache has the applied Migration but not yet its re-bound VM', async () => {
    const ctl = allocationController(cache);
    cache.start();
    const one = vmUsage(virtualNode(vc, 0));
    for (const n of ['blade1', 'blade2']) {
      const pn = await store.create(physicalNode(n, 8, 8192));
      if (n === 'blade1') await store.updateStatus<PhysicalNode>({ ...pn, status: { ...pn.status, allocated: one } });
    }
    const s0 = virtualNode(vc, 0);
    await store.create<VirtualNode>({ ...s0, spec: { ...s0.spec!, physicalNode: 'blade1' } });
    await store.create(virtualNode(vc, 1));
    const m = await store.create<Migration>({
      apiVersion: API_VERSION, kind: 'Migration', metadata: { name: 'm', namespace: 'default' },
      spec: { virtualNode: 's-0', targetNode: 'blade2' },
    });
    // The reservation on blade2, as this controller makes it; then some other VM changes.
    const b2 = await store.get<PhysicalNode>(pnRef('blade2'));
    await store.updateStatus<PhysicalNode>({ ...b2, status: { ...b2.status, allocated: one } });
    const s1 = await store.get<VirtualNode>(vnRef(1));
    await store.updateStatus<VirtualNode>({ ...s1, status: { phase: 'Pending' } });
    await caughtUp();
    cache.informer('VirtualNode').stop(); // the VMs' watch lags from here on; the Migrations' does not

    // placement/migration applies the Succeeded Migration: re-binds s-0 to blade2, frees blade1.
    const [b1, vn0] = [await store.get<PhysicalNode>(pnRef('blade1')), await store.get<VirtualNode>(vnRef(0))];
    await store.batch([
      { op: 'update', object: { ...m, metadata: { ...m.metadata, annotations: { [MIGRATION_APPLIED]: 'true' } } } },
      { op: 'update', object: { ...vn0, spec: { ...vn0.spec!, physicalNode: 'blade2' } } },
      { op: 'updateStatus', object: { ...b1, status: { ...b1.status, allocated: ZERO } } },
    ]);
    await eventually(async () => (cache.get<Migration>({ kind: 'Migration', name: 'm', namespace: 'default' })
      ?.metadata.annotations?.[MIGRATION_APPLIED] === 'true' ? true : undefined), 5_000, 'the applied Migration in the cache');
    const allocated = async () => (await store.get<PhysicalNode>(pnRef('blade2'))).status?.allocated;
    for (let i = 0; i < 2; i++) {
      await ctl.reconcile(pnRef('blade2'), ctx());
      assert.deepEqual(await allocated(), one, 's-0 is bound to blade2 now: its room stays taken');
    }
    cache.informer('VirtualNode').start();
    await caughtUp();
    assert.equal(await ctl.reconcile(pnRef('blade2'), ctx()), undefined);
    assert.deepEqual(await allocated(), one);
  });
  it('checks a node at rest without listing the Migrations, and counts only those onto it', async () => {
    const ctl = allocationController(cache);
    cache.start();
    await cache.waitForSync();
    for (const n of ['blade1', 'blade2']) await store.create(physicalNode(n, 8, 8192));
    for (let i = 0; i < 3; i++) await store.create(virtualNode(vc, i));
    await bind(0, 'blade1');
    await bind(1, 'blade1');
    await bind(2, 'blade2');
    // Many Migrations onto blade2 (a drain's), none onto blade1.
    for (let i = 0; i < 50; i++) {
      await store.create<Migration>({
        apiVersion: API_VERSION, kind: 'Migration', metadata: { name: `m${i}`, namespace: 'default' },
        spec: { virtualNode: `s-${i % 2}`, targetNode: 'blade2' },
      });
    }
    await caughtUp();
    let migrationLists = 0;
    const counting = new Proxy(cache, {
      get(target, prop) {
        if (prop === 'list') {
          return (kind: string, opts?: unknown) => {
            if (kind === 'Migration') migrationLists++;
            return target.list(kind, opts as never);
          };
        }
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const c: ReconcileContext = { ...ctx(), cache: counting };
    for (const n of ['blade1', 'blade2']) await ctl.reconcile(pnRef(n), c);
    await caughtUp();
    for (const n of ['blade1', 'blade2']) assert.equal(await ctl.reconcile(pnRef(n), c), undefined);
    const allocated = async (n: string) => (await store.get<PhysicalNode>(pnRef(n))).status?.allocated?.vms;
    assert.deepEqual({ blade1: await allocated('blade1'), blade2: await allocated('blade2') }, { blade1: 2, blade2: 1 + 50 },
      'blade2 holds its VM and the 50 reservations');
    assert.equal(migrationLists, 0, 'no reconcile listed every Migration of the cache');
  });
});
