// runtime's activeMigration / recentlyMigrated read a VM's Migrations from the informer's index
// of the Migrations by VM (was a map rebuilt per state of the cache's Migrations, and before that
// a list of the namespace's Migrations on every VM reconcile: hack/bench-scale). They answer as
// the plain pass does: per VM and namespace, unfinished and not being deleted; finished within
// 30 s; and writes (a Migration added, one finished) are seen.

import assert from 'node:assert/strict';
import type { ApiObject, Migration, VirtualNode } from '../../api/types.js';
import type { CacheReader } from '../../controllers/types.js';
import { activeMigration, recentlyMigrated } from '../../reconcilers/runtime/controller.js';
import { SharedCache } from '../../controllers/cache.js';
import { tempSqliteStore, waitFor, type TempSqliteStore } from '../controllers/helpers.js';

const vm = (name: string, namespace = 'a') => ({ kind: 'VirtualNode', metadata: { name, namespace } }) as unknown as VirtualNode;
const mig = (name: string, vmName: string, phase: string | undefined, o: { namespace?: string; completionTime?: string; deleting?: boolean } = {}) => ({
  kind: 'Migration',
  metadata: { name, namespace: o.namespace ?? 'a', ...(o.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
  spec: { virtualNode: vmName, targetNode: 'n2' },
  status: { ...(phase ? { phase } : {}), ...(o.completionTime ? { completionTime: o.completionTime } : {}) },
}) as unknown as Migration;

/** A reader without informers over `migs` (a pass over them per lookup). */
function plainCache(migs: Migration[]): CacheReader {
  return {
    get: () => undefined,
    list: <T extends ApiObject>(kind: string, opts?: { namespace?: string }) =>
      (kind === 'Migration' ? migs.filter((m) => !opts?.namespace || m.metadata.namespace === opts.namespace) : []) as unknown as T[],
  } as CacheReader;
}

const now = Date.parse('2026-12-05T10:00:00Z');
const initial = () => [
  mig('m1', 'v1', 'Succeeded', { completionTime: '2026-12-05T09:59:50Z' }),
  mig('m2', 'v1', 'Running'),
  mig('m3', 'v2', 'Failed', { completionTime: '2026-12-05T09:50:00Z' }),
  mig('m4', 'v2', undefined, { deleting: true }),
  mig('m5', 'v1', 'Pending', { namespace: 'b' }),
];
function assertFirst(cache: CacheReader): void {
  assert.equal(activeMigration(cache, vm('v1'))?.metadata.name, 'm2');
  assert.equal(activeMigration(cache, vm('v2')), undefined, 'failed, or being deleted: not active');
  assert.equal(activeMigration(cache, vm('v1', 'b'))?.metadata.name, 'm5', 'by namespace');
  assert.equal(activeMigration(cache, vm('v3')), undefined);
  assert.equal(recentlyMigrated(cache, vm('v1'), now), true);
  assert.equal(recentlyMigrated(cache, vm('v2'), now), false, 'finished 10 min ago');
}
function assertSecond(cache: CacheReader): void {
  assert.equal(activeMigration(cache, vm('v3'))?.metadata.name, 'm6');
  assert.equal(activeMigration(cache, vm('v1')), undefined);
}

describe('runtime: a VM\'s Migrations (a reader without informers)', () => {
  it('finds the unfinished one of that VM and namespace, and one finished within 30 s', () => {
    const migs = initial();
    const cache = plainCache(migs);
    assertFirst(cache);
    // A Migration added for v3, m2 finished.
    migs.push(mig('m6', 'v3', 'Pending'));
    migs[1] = mig('m2', 'v1', 'Succeeded', { completionTime: '2026-12-05T09:59:59Z' });
    assertSecond(cache);
  });
});

describe('runtime: a VM\'s Migrations (the informer\'s index by VM, embedded store)', function () {
  this.timeout(30_000);
  let tmp: TempSqliteStore;
  beforeEach(() => (tmp = tempSqliteStore(5)));
  afterEach(() => tmp.close());

  it('finds the unfinished one of that VM and namespace, and one finished within 30 s, and sees writes', async () => {
    const store = tmp.store;
    for (const m of initial()) {
      // (being deleted: held by a finalizer, then deleted)
      const deleting = !!m.metadata.deletionTimestamp;
      const { deletionTimestamp: _, ...meta } = m.metadata;
      await store.create({ ...m, apiVersion: 'virtualinux.io/v1', metadata: { ...meta, ...(deleting ? { finalizers: ['test/hold'] } : {}) } });
      if (deleting) await store.delete({ kind: 'Migration', namespace: meta.namespace, name: meta.name });
    }
    const cache = new SharedCache(store);
    cache.informer('Migration');
    cache.start();
    await cache.waitForSync();
    assertFirst(cache);
    await store.create({ ...mig('m6', 'v3', 'Pending'), apiVersion: 'virtualinux.io/v1' });
    const m2 = await store.get<Migration>({ kind: 'Migration', namespace: 'a', name: 'm2' });
    await store.updateStatus({ ...m2, status: { phase: 'Succeeded', completionTime: '2026-12-05T09:59:59Z' } } as Migration);
    const rev = await store.revision();
    await waitFor('the informer at the last write', () => cache.informer('Migration').lastRevision() >= rev || undefined, 10_000);
    assertSecond(cache);
    cache.stop();
  });
});
