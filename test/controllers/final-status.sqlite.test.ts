// A reconcile's last status write (ReconcileContext.writeFinalStatus, controllers/final-status.ts)
// clears the controller's own Reconciling in the same write, so the outcome writes nothing more;
// a plain status write is followed by the outcome's own. Real controllers under the manager, on
// the embedded store; the object's versions are counted from its watch (test/controllers/history.ts).

import assert from 'node:assert/strict';
import type { SqliteStore } from '../../api/store/sqlite-store.js';
import type { ApiObject, Condition } from '../../api/types.js';
import { getCondition, setCondition } from '../../api/conditions.js';
import { writeStatusOver } from '../../api/status-writer.js';
import { ControllerManager } from '../../controllers/manager.js';
import { silentLogger } from '../../controllers/log.js';
import { ManagerMetrics } from '../../controllers/metrics.js';
import { finalStatusWrite } from '../../controllers/final-status.js';
import { WaitingError, type ControllerSpec } from '../../controllers/types.js';
import { recordHistory } from './history.js';
import { sleep, tempSqliteStore, waitFor, type TempSqliteStore } from './helpers.js';

type WithConditions = ApiObject & { status?: { conditions?: Condition[] } };

/**
 * Waits (Reconciling True) while the annotation `test/step` is "wait"; on "work" it reports
 * progress and works past the progress delay first; then writes Done=True, through
 * finalStatusWrite when `final`, else a plain writeStatusOver.
 */
function doneWriter(name: string, final: boolean): ControllerSpec {
  return {
    name,
    forKind: 'OSTemplate',
    async reconcile(key, ctx) {
      // From the store: the cache may not hold the last reconcile's write yet.
      const o = await ctx.store.tryGet<WithConditions>(key);
      if (!o) return undefined;
      const step = o.metadata.annotations?.['test/step'];
      if (step === 'wait') throw new WaitingError('waits for the image', 'ImageMissing', 60_000);
      if (getCondition(o.status?.conditions, 'Done')?.message === step) return undefined; // done for this step
      if (step === 'work') {
        await ctx.progressing?.('Copying', 'copies the image');
        await sleep(1_300); // past PROGRESSING_DELAY_MS: Reconciling True is written meanwhile
      }
      const next = (cur: WithConditions) => ({ ...cur.status, conditions: setCondition(cur.status?.conditions, { type: 'Done', status: 'True', reason: 'Copied', message: step ?? '' }, cur.metadata.generation ?? 0) });
      if (final) await finalStatusWrite(ctx, o, next);
      else await writeStatusOver(ctx.store, o, next);
      return undefined;
    },
  };
}

describe('writeFinalStatus: the outcome\'s Reconciling cleared in the reconcile\'s own last write', function () {
  this.timeout(60_000);
  let tmp: TempSqliteStore;
  let store: SqliteStore;
  let manager: ControllerManager | undefined;
  beforeEach(() => {
    tmp = tempSqliteStore();
    store = tmp.store;
  });
  afterEach(async () => {
    await manager?.stop();
    manager = undefined;
    await tmp.close();
  });

  const get = (name: string) => store.get<WithConditions>({ kind: 'OSTemplate', name });
  async function annotate(name: string, step: string): Promise<void> {
    const o = await get(name);
    await store.update({ ...o, metadata: { ...o.metadata, annotations: { 'test/step': step } } });
  }

  /** Runs one controller over a template that first waits, then is let go; the status writes after it is let go. */
  async function writesAfterWait(final: boolean, step: string): Promise<{ writes: number; requests: number; conditions: Condition[] }> {
    const name = final ? 'final' : 'plain';
    const metrics = new ManagerMetrics();
    const requests = async () => (await metrics.storeRequests.get()).values.find((v) => v.labels.controller === name && v.labels.op === 'updateStatus')?.value ?? 0;
    manager = new ControllerManager({ store, identity: 't', leaderElection: false, log: silentLogger(), eventCleanupMs: 0, specs: [doneWriter(name, final)], metrics });
    await manager.start();
    await store.create({
      apiVersion: 'virtualinux.org/v1alpha1', kind: 'OSTemplate',
      metadata: { name, annotations: { 'test/step': 'wait' } },
      spec: { image: { path: '/images/x.qcow2' }, revision: 1 },
    } as ApiObject);
    const ownType = `${name[0]!.toUpperCase()}${name.slice(1)}Reconciling`;
    await waitFor('waiting', async () => getCondition((await get(name)).status?.conditions, ownType)?.status === 'True');
    const before = await requests();
    await annotate(name, step);
    const from = Number((await get(name)).metadata.resourceVersion) + 1;
    const h = recordHistory(store, ['OSTemplate'], from);
    try {
      const conditions = await waitFor('done and settled', async () => {
        const cs = (await get(name)).status?.conditions;
        return getCondition(cs, 'Done')?.status === 'True' && getCondition(cs, 'Reconciling')?.status === 'False' ? cs : undefined;
      });
      await sleep(1_500); // anything the outcome (or a late progress write) would still write
      assert.deepEqual((await get(name)).status?.conditions, conditions, 'nothing written after');
      return { writes: h.events.filter((e) => e.object.metadata.name === name).length, requests: (await requests()) - before, conditions };
    } finally {
      h.stop();
    }
  }

  it('a reconcile that waited, then succeeds: one status write with writeFinalStatus, two without (its own and the outcome\'s)', async () => {
    const withFinal = await writesAfterWait(true, 'go');
    assert.equal(getCondition(withFinal.conditions, 'FinalReconciling')?.status, 'False');
    assert.equal(getCondition(withFinal.conditions, 'FinalReconciling')?.reason, 'Succeeded');
    assert.equal(withFinal.writes, 1, 'Done and the cleared Reconciling in one write');
    // The outcome reads what the reconcile wrote, not the cache (which may still hold Reconciling
    // True): it does not even try a write (a refused one, then a read, then nothing to write).
    assert.equal(withFinal.requests, 1, 'one status write request');
    await manager!.stop();
    manager = undefined;
    const plain = await writesAfterWait(false, 'go');
    assert.equal(getCondition(plain.conditions, 'PlainReconciling')?.status, 'False');
    assert.equal(plain.writes, 2, 'Done, then the outcome\'s clear');
  });

  it('a reconcile that progressed (Reconciling True written while it runs): its last write clears it, and nothing sets it True again', async () => {
    const r = await writesAfterWait(true, 'work');
    // The progress write (its Reconciling True over the waiting one's) and the final write.
    assert.equal(getCondition(r.conditions, 'FinalReconciling')?.status, 'False');
    assert.equal(getCondition(r.conditions, 'Reconciling')?.status, 'False');
    assert.ok(r.writes <= 2, `at most the progress write and the final one (${r.writes})`);
  });
});
