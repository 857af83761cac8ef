// runtime's activeMigration / recentlyMigrated read a VM's Migrations from an index built once per
// state of the cache's Migrations (was a list of the namespace's Migrations on every VM reconcile:
// VMs x Migrations during a drain, hack/bench-scale). They answer as the plain pass does: per VM
// and namespace, unfinished and not being deleted; finished within 30 s; and a new state of the
// informer (a Migration added or finished) is seen.

import assert from 'node:assert/strict';
import type { ApiObject, Migration, VirtualNode } from '../../api/types.js';
import type { CacheReader } from '../../controllers/types.js';
import { activeMigration, recentlyMigrated } from '../../reconcilers/runtime/controller.js';

const vm = (name: string, namespace = 'a') => ({ kind: 'VirtualNode', metadata: { name, namespace } }) as unknown as VirtualNode;
const mig = (name: string, vmName: string, phase: string | undefined, o: { namespace?: string; completionTime?: string; deleting?: boolean } = {}) => ({
  kind: 'Migration',
  metadata: { name, namespace: o.namespace ?? 'a', ...(o.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
  spec: { virtualNode: vmName, targetNode: 'n2' },
  status: { ...(phase ? { phase } : {}), ...(o.completionTime ? { completionTime: o.completionTime } : {}) },
}) as unknown as Migration;

/** A cache whose Migration informer is at `rev` (bumped by the test with each change). */
function cacheOf(migs: Migration[], informers: boolean): CacheReader & { rev: number } {
  const c = {
    rev: 1,
    get: () => undefined,
    list: <T extends ApiObject>(kind: string, opts?: { namespace?: string }) =>
      (kind === 'Migration' ? migs.filter((m) => !opts?.namespace || m.metadata.namespace === opts.namespace) : []) as unknown as T[],
  };
  return informers ? Object.assign(c, { informer: () => ({ lastRevision: () => c.rev }) }) : c;
}

for (const informers of [true, false]) {
  describe(`runtime: a VM's Migrations (${informers ? 'indexed per informer state' : 'a reader without informers'})`, () => {
    const now = Date.parse('2026-12-05T10:00:00Z');
    it('finds the unfinished one of that VM and namespace, and one finished within 30 s', () => {
      const migs = [
        mig('m1', 'v1', 'Succeeded', { completionTime: '2026-12-05T09:59:50Z' }),
        mig('m2', 'v1', 'Running'),
        mig('m3', 'v2', 'Failed', { completionTime: '2026-12-05T09:50:00Z' }),
        mig('m4', 'v2', undefined, { deleting: true }),
        mig('m5', 'v1', 'Pending', { namespace: 'b' }),
      ];
      const cache = cacheOf(migs, informers);
      assert.equal(activeMigration(cache, vm('v1'))?.metadata.name, 'm2');
      assert.equal(activeMigration(cache, vm('v2')), undefined, 'failed, or being deleted: not active');
      assert.equal(activeMigration(cache, vm('v1', 'b'))?.metadata.name, 'm5', 'by namespace');
      assert.equal(activeMigration(cache, vm('v3')), undefined);
      assert.equal(recentlyMigrated(cache, vm('v1'), now), true);
      assert.equal(recentlyMigrated(cache, vm('v2'), now), false, 'finished 10 min ago');
      // A new informer state: a Migration added for v3, m2 finished.
      migs.push(mig('m6', 'v3', 'Pending'));
      migs[1] = mig('m2', 'v1', 'Succeeded', { completionTime: '2026-12-05T09:59:59Z' });
      cache.rev++;
      assert.equal(activeMigration(cache, vm('v3'))?.metadata.name, 'm6');
      assert.equal(activeMigration(cache, vm('v1')), undefined);
    });
  });
}
