// placement/migration applying Succeeded Migrations while others write the same objects: the two
// migrations off one node that end together (the runtime's limit per node is 2) both write the
// source node, and the runtime writes the VMs' status meanwhile. A Conflict is redone over fresh
// reads within the reconcile, not left to the work queue's backoff (hack/bench-scale 3,000 VMs:
// 841 failed reconciles for 960 migrations). The store is real (the embedded SQLite backend), the
// cache a real SharedCache over it.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import type { BatchOp, Store } from '../../api/store/types.js';
import { API_VERSION, type Migration, type PhysicalNode, type VirtualNode } from '../../api/types.js';
import { SharedCache } from '../../controllers/cache.js';
import { silentLogger } from '../../controllers/log.js';
import type { ReconcileContext } from '../../controllers/types.js';
import { MIGRATION_APPLIED } from '../../reconcilers/placement/allocation.js';
import { migrationBindingController } from '../../reconcilers/placement/controller.js';
import { addUsage, vmUsage, ZERO } from '../../reconcilers/placement/plan-binding.js';
import { eventually, physicalNode, virtualCluster, virtualNode } from './fixtures.js';

describe('placement/migration applies Succeeded Migrations', function () {
  this.timeout(30_000);
  let dir: string;
  let store: SqliteStore;
  let cache: SharedCache;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vl-migration-apply-'));
    store = new SqliteStore(join(dir, 'store.db'), { pollIntervalMs: 5 });
    cache = new SharedCache(store, { log: silentLogger() });
    for (const k of ['PhysicalNode', 'VirtualNode', 'Migration']) cache.informer(k);
    cache.start();
  });
  afterEach(async () => {
    cache.stop();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const vc = virtualCluster('s', 2, 2, 1024);
  const ns = 'default';
  const ctx = (s: Store): ReconcileContext => ({
    store: s, cache, events: { record: () => undefined }, log: silentLogger(), signal: new AbortController().signal,
  });

  /** s-0 and s-1 on blade1, each migrated (Succeeded, not applied) to blade2 and blade3. */
  async function twoSucceeded(): Promise<void> {
    const one = vmUsage(virtualNode(vc, 0));
    for (const n of ['blade1', 'blade2', 'blade3']) {
      const pn = await store.create(physicalNode(n, 8, 8192));
      // blade1 holds both VMs; each target holds its Migration's reservation.
      const allocated = n === 'blade1' ? addUsage(one, one) : one;
      await store.updateStatus<PhysicalNode>({ ...pn, status: { ...pn.status, allocated } });
    }
    for (const i of [0, 1]) {
      const vn = virtualNode(vc, i);
      await store.create<VirtualNode>({ ...vn, spec: { ...vn.spec!, physicalNode: 'blade1' } });
      const m = await store.create<Migration>({
        apiVersion: API_VERSION, kind: 'Migration', metadata: { name: `m${i}`, namespace: ns },
        spec: { virtualNode: `s-${i}`, targetNode: `blade${i + 2}` },
      });
      await store.updateStatus<Migration>({ ...m, status: { phase: 'Succeeded' } });
    }
    await eventually(async () => (['m0', 'm1'].every((name) => cache.get<Migration>({ kind: 'Migration', name, namespace: ns })?.status?.phase === 'Succeeded')
      && cache.list('PhysicalNode').length === 3 && cache.list('VirtualNode').length === 2 ? true : undefined), 5_000, 'the cache');
  }

  async function assertApplied(): Promise<void> {
    for (const i of [0, 1]) {
      const m = await store.get<Migration>({ kind: 'Migration', name: `m${i}`, namespace: ns });
      assert.equal(m.metadata.annotations?.[MIGRATION_APPLIED], 'true', `m${i} is applied`);
      const vn = await store.get<VirtualNode>({ kind: 'VirtualNode', name: `s-${i}`, namespace: ns });
      assert.equal(vn.spec?.physicalNode, `blade${i + 2}`, `s-${i} is bound to its target`);
    }
    const b1 = await store.get<PhysicalNode>({ kind: 'PhysicalNode', name: 'blade1' });
    assert.deepEqual(b1.status?.allocated, ZERO, 'blade1 gave back the room of both VMs');
  }

  it('two applies off one source node at once both succeed in their reconcile', async () => {
    await twoSucceeded();
    const ctl = migrationBindingController();
    // Each batch waits until both reconciles have read what they write (as two workers do when
    // the two migrations end together), so the second batch meets the first one's write.
    let first: (() => void) | undefined;
    let batches = 0;
    const together: Store = Object.create(store, {
      batch: {
        value: async (ops: BatchOp[]) => {
          batches++;
          if (batches === 1) await new Promise<void>((r) => (first = r));
          else if (batches === 2) first!();
          return store.batch(ops);
        },
      },
    });
    const results = await Promise.allSettled(['m0', 'm1'].map((name) => ctl.reconcile({ kind: 'Migration', name, namespace: ns }, ctx(together))));
    assert.deepEqual(results.map((r) => r.status === 'rejected' ? String(r.reason) : 'ok'), ['ok', 'ok']);
    assert.ok(batches >= 3, `the second batch met the first one's write and was redone (${batches} batches)`);
    await assertApplied();
  });

  it('a status write of the VM between its read and the batch does not fail the reconcile', async () => {
    await twoSucceeded();
    const ctl = migrationBindingController();
    // The runtime writes s-0's status just before the first batch (its read is then stale).
    let injected = false;
    const racing: Store = Object.create(store, {
      batch: {
        value: async (ops: BatchOp[]) => {
          if (!injected) {
            injected = true;
            const vn = await store.get<VirtualNode>({ kind: 'VirtualNode', name: 's-0', namespace: ns });
            await store.updateStatus<VirtualNode>({ ...vn, status: { phase: 'Running', host: 'blade2' } });
          }
          return store.batch(ops);
        },
      },
    });
    assert.equal(await ctl.reconcile({ kind: 'Migration', name: 'm0', namespace: ns }, ctx(racing)), undefined);
    assert.equal(injected, true);
    assert.equal(await ctl.reconcile({ kind: 'Migration', name: 'm1', namespace: ns }, ctx(racing)), undefined);
    await assertApplied();
    // Applied once: a reconcile of an applied Migration (the cache may still show it not applied)
    // writes nothing more.
    const before = (await store.get<PhysicalNode>({ kind: 'PhysicalNode', name: 'blade1' })).metadata.resourceVersion;
    await ctl.reconcile({ kind: 'Migration', name: 'm0', namespace: ns }, ctx(store));
    assert.equal((await store.get<PhysicalNode>({ kind: 'PhysicalNode', name: 'blade1' })).metadata.resourceVersion, before);
    await assertApplied();
  });
});
