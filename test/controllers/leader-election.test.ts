// Leader election and the fence, in-process, on both backends (real etcd and the embedded store).
// These exercise the store-side fence directly: a write carrying the deposed leader's fence is
// refused by the store itself, not only by the local check.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEtcd, type EtcdHarness } from '../../hack/lib/etcd-harness.js';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import { FencedError, type Fence, type Store } from '../../api/store/types.js';
import { LeaderElector, type LeaderTerm } from '../../controllers/leader-election.js';
import { FencedStore } from '../../controllers/fenced-store.js';
import { openTestStore, sleep, waitFor } from './helpers.js';

interface Backend {
  name: string;
  open(): Promise<{ stores: [Store, Store]; close(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'etcd',
    async open() {
      const etcd: EtcdHarness = await startEtcd();
      const stores: [Store, Store] = [await openTestStore(etcd.url), await openTestStore(etcd.url)];
      return { stores, async close() { await Promise.all(stores.map((s) => s.close())); await etcd.stop(); } };
    },
  },
  {
    name: 'sqlite',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'vl-le-'));
      const stores: [Store, Store] = [
        new SqliteStore(join(dir, 's.db'), { pollIntervalMs: 10 }),
        new SqliteStore(join(dir, 's.db'), { pollIntervalMs: 10 }),
      ];
      return { stores, async close() { await Promise.all(stores.map((s) => s.close())); rmSync(dir, { recursive: true, force: true }); } };
    },
  },
];

for (const backend of backends) {
  describe(`LeaderElector on ${backend.name}`, function () {
    this.timeout(60_000);
    let env: Awaited<ReturnType<Backend['open']>>;
    const electors: LeaderElector[] = [];
    before(async () => { env = await backend.open(); });
    afterEach(async () => { await Promise.all(electors.splice(0).map((e) => e.shutdown())); });
    after(async () => { await env?.close(); });

    function elector(i: 0 | 1, key: string, terms: LeaderTerm[]): LeaderElector {
      const e = new LeaderElector({
        store: env.stores[i], identity: `cand-${i}`, ttlSeconds: 2, key,
        onStartedLeading: (t) => { terms.push(t); },
      });
      electors.push(e);
      void e.start();
      return e;
    }

    it('elects exactly one leader; when its lease goes, a new term starts and the old fence is refused by the store', async () => {
      const t0: LeaderTerm[] = [];
      const t1: LeaderTerm[] = [];
      const e0 = elector(0, 'test/le-1', t0);
      await waitFor('first leader', () => e0.isLeader());
      const e1 = elector(1, 'test/le-1', t1);
      await sleep(1500);
      assert.equal(e1.isLeader(), false, 'only one leader');
      assert.equal(t1.length, 0);
      const oldFence = e0.currentFence() as Fence;
      const probe = { apiVersion: 'test/v1', kind: 'FenceProbe', metadata: { name: `p-${backend.name}` }, spec: { v: 0 } };
      const ref = { kind: 'FenceProbe', name: probe.metadata.name };
      const leaderStore = new FencedStore(env.stores[0], e0);
      await leaderStore.create(probe);

      // Take the lease away behind the leader's back (what expiry does to a paused process).
      const held = await env.stores[0].leases.getRaw('test/le-1');
      assert.equal(held?.value, 'cand-0');
      await e0['revoke']();
      await waitFor('old term aborted', () => t0[0]?.signal.aborted);
      // The old candidate campaigns again at once and may win the new term; either way it is a new term.
      const next = await waitFor('a new term', () => [e0, e1].find((e) => e.isLeader()), 5000);
      const newFence = next.currentFence() as Fence;
      assert.notEqual(newFence.createRevision, oldFence.createRevision);

      // A write carrying the old fence, sent as if the local check had not noticed: the store refuses it.
      const stale = new FencedStore(env.stores[0], { currentFence: () => oldFence });
      const cur = await env.stores[0].get(ref);
      await assert.rejects(stale.update({ ...cur, spec: { v: 1 } }), FencedError);
      await assert.rejects(stale.delete(ref), FencedError);
      await assert.rejects(stale.create({ ...probe, metadata: { name: `q-${backend.name}` } }), FencedError);
      assert.deepEqual((await env.stores[0].get(ref)).spec, { v: 0 }, 'nothing changed');
      assert.equal(await env.stores[0].tryGet({ kind: 'FenceProbe', name: `q-${backend.name}` }), undefined);
      // A deposed leader's own FencedStore refuses before sending.
      if (next === e1) await assert.rejects(leaderStore.update({ ...cur, spec: { v: 2 } }), FencedError);
      // The new leader's writes go through.
      await new FencedStore(env.stores[next === e0 ? 0 : 1], next).update({ ...cur, spec: { v: 3 } });
      assert.deepEqual((await env.stores[0].get(ref)).spec, { v: 3 });
    });

    it('shutdown releases the key so the standby leads at once', async () => {
      const e0 = elector(0, 'test/le-2', []);
      await waitFor('leader', () => e0.isLeader());
      const e1 = elector(1, 'test/le-2', []);
      await sleep(300);
      const t = Date.now();
      await e0.shutdown();
      await waitFor('standby leads', () => e1.isLeader(), 5000, 10);
      assert.ok(Date.now() - t < 1500, `took ${Date.now() - t} ms`);
    });
  });
}
