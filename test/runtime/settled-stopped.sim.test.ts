// SIMULATION (a sim host): a VM kept Stopped or Suspended, with nothing left to do, is not polled:
// its reconcile writes its phase and asks for no requeue (a change of its VC wakes it). Polled
// every 5 s, each such VM cost its node three commands forever (on a full node, a third of its
// dom0's commands: VL_TRACE_EXEC, session 18).

import assert from 'node:assert/strict';
import type { VCState, VirtualNode } from '../../api/types.js';
import { tempSqliteStore, type TempSqliteStore } from '../controllers/helpers.js';
import { simRuntime } from './sim-fixture.js';

describe('runtime: a VM kept Stopped or Suspended is not polled (sim host)', function () {
  this.timeout(30_000);
  let tmp: TempSqliteStore;
  beforeEach(() => { tmp = tempSqliteStore(5); });
  afterEach(async () => { await tmp.close(); });

  const cases: { state: VCState; requeued: boolean }[] = [
    { state: 'Stopped', requeued: false },
    { state: 'Suspended', requeued: false },
    // the contrast: a VM to run, its volumes not there, is looked at again (a backstop)
    { state: 'Running', requeued: true },
  ];
  for (const c of cases) {
    it(`${c.state}: ${c.requeued ? 'requeued' : 'its phase written, no requeue'}`, async () => {
      const { spec, ctx, key, refresh } = await simRuntime(tmp.store, c.state);
      // the first pass adds the finalizer; the second runs over what it wrote, as the next event would
      await spec.reconcile(key, ctx);
      await refresh();
      const result = await spec.reconcile(key, ctx);
      const after = await tmp.store.get<VirtualNode>(key);
      assert.equal(after.status?.phase, c.state === 'Running' ? 'Scheduled' : 'Stopped', JSON.stringify(after.status));
      if (c.requeued) assert.ok(result && 'requeueAfterMs' in result && result.requeueAfterMs! > 0, `requeued: ${JSON.stringify(result)}`);
      else assert.equal(result, undefined, `no requeue: ${JSON.stringify(result)}`);
    });
  }
});
