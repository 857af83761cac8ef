// What only the etcd backend has: keys laid out under the prefix, retries of unconditional
// updates that race, large batches, and a watch that ends with onError when etcd goes away.

import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import type { ApiObject } from '../../api/types.js';
import { EtcdStore } from '../../api/store/etcd-store.js';
import { StoreError } from '../../api/store/types.js';
import { startEtcd, type EtcdHarness } from '../../hack/lib/etcd-harness.js';
import { collect, waitFor, widget } from '../conformance/store-conformance.js';

describe('EtcdStore', function () {
  this.timeout(60_000);
  let etcd: EtcdHarness | undefined;
  const stores: EtcdStore[] = [];
  const connect = async (prefix: string, extra = {}) => {
    const s = await EtcdStore.connect({ endpoints: etcd!.endpoints, prefix, ...extra });
    stores.push(s);
    return s;
  };
  beforeEach(async () => { etcd = await startEtcd(); });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    await etcd?.stop();
  });

  it('stores objects under <prefix>/<plural>/<namespace>/<name>, resourceVersion = modRevision', async () => {
    const s = await connect('/vl');
    const vc = await s.create<ApiObject>({ apiVersion: 'virtualinux.org/v1alpha1', kind: 'VirtualCluster', metadata: { name: 'stripes', namespace: 'default' }, spec: {} });
    const pn = await s.create<ApiObject>({ apiVersion: 'virtualinux.org/v1alpha1', kind: 'PhysicalNode', metadata: { name: 'blade1' }, spec: {} });
    await s.leases.putIfAbsent('leader', 'me', await s.leases.grant(30));
    const raw = new Etcd3({ hosts: etcd!.endpoints });
    try {
      const keys = (await raw.getAll().prefix('/vl/').keys()).sort();
      assert.deepEqual(keys, ['/vl/_raw/leader', '/vl/physicalnodes/blade1', '/vl/virtualclusters/default/stripes']);
      const stored = JSON.parse((await raw.get('/vl/virtualclusters/default/stripes').string())!);
      assert.equal(stored.metadata.resourceVersion, undefined, 'the revision is not stored in the value');
      assert.equal(stored.metadata.uid, vc.metadata.uid);
      const kv = (await raw.get('/vl/physicalnodes/blade1').exec()).kvs[0];
      assert.equal(kv.mod_revision, pn.metadata.resourceVersion);
    } finally {
      raw.close();
    }
  });

  it('retries unconditional updates that race; none is lost', async () => {
    const a = await connect('/race');
    const b = await connect('/race');
    await a.create({ ...widget('c'), spec: { size: 0 } });
    // Unconditional read-modify-writes cannot be made safe by the store, but conditional ones
    // retried by the caller must all land; unconditional ones must each succeed.
    const bump = async (s: EtcdStore) => {
      for (let i = 0; i < 25; i++) {
        for (;;) {
          const o = await s.get<ReturnType<typeof widget>>({ kind: 'Widget', namespace: 'default', name: 'c' });
          try { await s.update({ ...o, spec: { size: o.spec!.size + 1 } }); break; } catch (e) { if ((e as Error).name !== 'ConflictError') throw e; }
        }
      }
    };
    await Promise.all([bump(a), bump(b)]);
    const final = await a.get<ReturnType<typeof widget>>({ kind: 'Widget', namespace: 'default', name: 'c' });
    assert.equal(final.spec!.size, 50);
    const unconditional = await Promise.all(Array.from({ length: 20 }, (_v, i) => (i % 2 ? a : b).updateStatus({ ...widget('c'), status: { phase: `p${i}` } })));
    assert.equal(new Set(unconditional.map((o) => o.metadata.resourceVersion)).size, 20, 'each write got its own revision');
  });

  it('writes a batch of 1000 objects in one transaction', async () => {
    const s = await connect('/big');
    const before = await s.revision();
    const out = await s.batch(Array.from({ length: 1000 }, (_v, i) => ({ op: 'create' as const, object: widget(`w${i}`) })));
    assert.equal(await s.revision(), before + 1);
    assert.equal(out.length, 1000);
    assert.equal((await s.list('Widget')).items.length, 1000);
  });

  it('a list of ~6 MiB arrives within the deadline while this process\'s event loop is busy (HTTP/2 flow control window)', async () => {
    // With HTTP/2's default 64 KiB window the answer came 64 KiB per turn of a busy event loop:
    // ~20 s for this list (vc-manager at 10,000 VMs: every list of its VirtualClusters failed at
    // the store's 10 s deadline). The window is FLOW_CONTROL_WINDOW now.
    const s = await connect('/wide', { callTimeoutMs: 5000 });
    const pad = 'x'.repeat(2000);
    const all = Array.from({ length: 3000 }, (_v, i) => ({ op: 'create' as const, object: { ...widget(`w${i}`), spec: { pad } } }));
    for (let i = 0; i < all.length; i += 100) await s.batch(all.slice(i, i + 100));
    // Busy: the loop blocked 50 ms of every ~60 ms while the list is read.
    const busy = setInterval(() => {
      const end = performance.now() + 50;
      while (performance.now() < end);
    }, 10);
    try {
      assert.equal((await s.list('Widget')).items.length, 3000);
    } finally {
      clearInterval(busy);
    }
  });

  it('says so when a batch exceeds etcd\'s --max-txn-ops', async () => {
    await etcd!.stop();
    etcd = await startEtcd({ maxTxnOps: 128 });
    const s = await connect('/small');
    await assert.rejects(
      s.batch(Array.from({ length: 129 }, (_v, i) => ({ op: 'create' as const, object: widget(`w${i}`) }))),
      (e: Error) => e instanceof StoreError && /more operations than etcd's --max-txn-ops allows; split it/.test(e.message),
    );
    assert.deepEqual((await s.list('Widget')).items, []);
  });

  it('ends a watch with onError when etcd stays unreachable', async () => {
    const s = await connect('/w', { watchBrokenAfterMs: 1500, callTimeoutMs: 2000 });
    const w = collect(s, 'Widget', (await s.revision()) + 1);
    await s.create(widget('a'));
    await waitFor('the event', () => w.events.length === 1);
    await etcd!.stop();
    await waitFor('onError', () => w.errors.length === 1, 20_000);
    assert.match(w.errors[0].message, /the connection to etcd at .* has been down for 1500 ms/);
    assert.ok(w.errors[0] instanceof StoreError);
    w.watch.close();
  });
});
