// SIMULATION (a sim host): a new VM's first runtime pass adds the runtime's finalizer and goes on
// with the object as written, in the same reconcile: it returned after the finalizer and waited for
// its own update event, one more turn at the back of a queue of 10,000 VMs (~5 min a turn at that
// size, hack/bench-scale session 11).

import assert from 'node:assert/strict';
import { hasFinalizer } from '../../api/finalizers.js';
import type { VirtualNode } from '../../api/types.js';
import { RUNTIME_FINALIZER } from '../../reconcilers/runtime/controller.js';
import { tempSqliteStore, type TempSqliteStore } from '../controllers/helpers.js';
import { simRuntime } from './sim-fixture.js';

describe('runtime: a new VM\'s first pass (sim host)', function () {
  this.timeout(30_000);
  let tmp: TempSqliteStore;
  beforeEach(() => { tmp = tempSqliteStore(5); });
  afterEach(async () => { await tmp.close(); });

  it('adds the finalizer and writes the VM\'s status in one reconcile', async () => {
    const { spec, ctx, cache, key } = await simRuntime(tmp.store);
    assert.equal(hasFinalizer(cache.get<VirtualNode>(key)!, RUNTIME_FINALIZER), false);
    await spec.reconcile(key, ctx);
    const after = await tmp.store.get<VirtualNode>(key);
    assert.ok(hasFinalizer(after, RUNTIME_FINALIZER), 'the finalizer');
    assert.ok(after.status?.conditions?.some((c) => c.type === 'Running'), `a status written in the same pass: ${JSON.stringify(after.status)}`);
  });
});
