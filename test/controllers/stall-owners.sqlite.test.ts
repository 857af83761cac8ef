// Who owns Stalled (issue 22 item 6): each controller of an object sets and clears only its own
// `<Owner>Stalled` condition, and `Stalled` is rolled up from all of them in one place
// (api/conditions.ts), so two stalled controllers never overwrite each other. And the error
// taxonomy (item 3): Stalling, Waiting and Generic errors mapped to conditions in one place
// (controllers/outcome.ts). Real controllers on one kind, under the manager, on the embedded store.

import assert from 'node:assert/strict';
import type { SqliteStore } from '../../api/store/sqlite-store.js';
import type { ApiObject, Condition } from '../../api/types.js';
import { getCondition, setOwned, STALLED, stalledConditionType } from '../../api/conditions.js';
import { ControllerManager } from '../../controllers/manager.js';
import { silentLogger } from '../../controllers/log.js';
import { GenericError, StallingError, WaitingError, type ControllerSpec } from '../../controllers/types.js';
import { conditionEffects } from '../../controllers/outcome.js';
import { tempSqliteStore, waitFor, type TempSqliteStore } from './helpers.js';

let release: (() => void) | undefined;
let slowDone = false;

/** A controller that stalls while the object's annotation `test/<flag>` is "stall". */
function stallWhenAsked(name: string, flag: string): ControllerSpec {
  return {
    name,
    forKind: 'OSTemplate',
    condition: name === 'second' ? 'ImageReady' : undefined,
    async reconcile(key, ctx) {
      const o = ctx.cache.get<ApiObject>({ kind: 'OSTemplate', name: key.name });
      const asked = o?.metadata.annotations?.[`test/${flag}`];
      if (asked === 'slow' && !slowDone) {
        slowDone = true; // the status write below brings the key back: that reconcile is quick
        await ctx.progressing?.('Copying', `${name} copies the image`);
        await new Promise<void>((r) => { release = r; });
        return undefined;
      }
      if (asked === 'wait') throw new WaitingError(`${name} waits for the image`, 'ImageMissing', 200);
      if (asked === 'fail') throw new GenericError(`${name} could not copy`, 'CopyFailed');
      if (asked === 'stall') throw new StallingError(`${name} cannot go on`, `${name.replace(/[^a-z]/g, '')}Reason`);
      return undefined;
    },
  };
}

describe('Stalled: one condition per controller, rolled up in one place', function () {
  this.timeout(60_000);
  let tmp: TempSqliteStore;
  let store: SqliteStore;
  let manager: ControllerManager;

  before(async () => {
    tmp = tempSqliteStore();
    store = tmp.store;
    manager = new ControllerManager({
      store, identity: 'stall-test', leaseTtlSeconds: 2, log: silentLogger(),
      specs: [stallWhenAsked('first/ctl', 'first'), stallWhenAsked('second', 'second')],
    });
    await manager.start();
    await waitFor('leading', () => manager.isLeader() && manager.isReady());
  });
  after(async () => {
    await manager?.stop();
    await tmp?.close();
  });

  const conditions = async () => ((await store.get<ApiObject>({ kind: 'OSTemplate', name: 'tpl' })).status as { conditions?: Condition[] } | undefined)?.conditions;
  async function annotate(a: Record<string, string>): Promise<void> {
    const o = await store.get<ApiObject>({ kind: 'OSTemplate', name: 'tpl' });
    await store.update({ ...o, metadata: { ...o.metadata, annotations: a } });
  }

  it('both stalled: both own conditions and a Stalled naming both; one recovers: still Stalled by the other; both: Stalled False', async () => {
    await store.create({
      apiVersion: 'virtualinux.org/v1alpha1', kind: 'OSTemplate',
      metadata: { name: 'tpl', annotations: { 'test/first': 'stall', 'test/second': 'stall' } },
      spec: { image: { path: '/images/x.qcow2' }, revision: 1 },
    } as ApiObject);
    const both = await waitFor('both stalled', async () => {
      const cs = await conditions();
      return getCondition(cs, 'FirstCtlStalled')?.status === 'True' && getCondition(cs, 'SecondStalled')?.status === 'True' ? cs : undefined;
    });
    const rolled = getCondition(both, 'Stalled')!;
    assert.equal(rolled.status, 'True');
    assert.equal(rolled.reason, 'firstctlReason', 'the first stalled owner (by condition type) gives the reason');
    assert.equal(rolled.message, 'first/ctl: first/ctl cannot go on; second: second cannot go on');

    await annotate({ 'test/second': 'stall' });
    const one = await waitFor('first recovered', async () => {
      const cs = await conditions();
      return getCondition(cs, 'FirstCtlStalled')?.status === 'False' ? cs : undefined;
    });
    assert.equal(getCondition(one, 'SecondStalled')?.status, 'True', 'the other stall is kept');
    assert.equal(getCondition(one, 'Stalled')?.status, 'True');
    assert.equal(getCondition(one, 'Stalled')?.message, 'second: second cannot go on');

    await annotate({});
    const none = await waitFor('both recovered', async () => {
      const cs = await conditions();
      return getCondition(cs, 'Stalled')?.status === 'False' ? cs : undefined;
    });
    assert.equal(getCondition(none, 'SecondStalled')?.status, 'False');
    assert.equal(getCondition(none, 'Stalled')?.reason, 'Reconciled');
  });

  it('Waiting and Generic errors: the controller\'s own Reconciling (rolled up) and its declared condition False with the reason; a success clears Reconciling', async () => {
    await annotate({ 'test/second': 'wait' });
    const waiting = await waitFor('second waiting', async () => {
      const cs = await conditions();
      return getCondition(cs, 'SecondReconciling')?.status === 'True' ? cs : undefined;
    });
    assert.equal(getCondition(waiting, 'Reconciling')?.status, 'True');
    assert.equal(getCondition(waiting, 'Reconciling')?.reason, 'ImageMissing');
    assert.deepEqual([getCondition(waiting, 'ImageReady')?.status, getCondition(waiting, 'ImageReady')?.reason], ['False', 'ImageMissing']);
    assert.equal(getCondition(waiting, 'FirstCtlReconciling'), undefined, 'a controller without work in flight adds nothing');
    await annotate({ 'test/second': 'fail' });
    const failing = await waitFor('second failing', async () => {
      const cs = await conditions();
      return getCondition(cs, 'ImageReady')?.reason === 'CopyFailed' ? cs : undefined;
    });
    assert.equal(getCondition(failing, 'Reconciling')?.reason, 'CopyFailed');
    assert.equal(getCondition(failing, 'Stalled')?.status, 'False', 'retried, not stalled');
    await annotate({});
    const done = await waitFor('second done', async () => {
      const cs = await conditions();
      return getCondition(cs, 'Reconciling')?.status === 'False' ? cs : undefined;
    });
    assert.equal(getCondition(done, 'SecondReconciling')?.status, 'False');
  });

  it('progressing: Reconciling True while the work runs, cleared when the reconcile returns', async () => {
    await annotate({ 'test/first': 'slow' });
    const during = await waitFor('first progressing', async () => {
      const cs = await conditions();
      return getCondition(cs, 'FirstCtlReconciling')?.status === 'True' ? cs : undefined;
    });
    assert.equal(getCondition(during, 'Reconciling')?.reason, 'Copying');
    assert.equal(getCondition(during, 'Reconciling')?.message, 'first/ctl: first/ctl copies the image');
    await waitFor('the reconcile waits', () => release);
    release!();
    const after = await waitFor('first done', async () => {
      const cs = await conditions();
      return getCondition(cs, 'Reconciling')?.status === 'False' ? cs : undefined;
    });
    assert.equal(getCondition(after, 'FirstCtlReconciling')?.status, 'False');
    await annotate({});
  });

  it('conditionEffects: the one mapping', () => {
    assert.deepEqual(conditionEffects({ kind: 'done' }, 'X'), { set: [], clear: ['Stalled', 'Reconciling'] });
    assert.deepEqual(conditionEffects({ kind: 'requeue', afterMs: 5 }, 'X'), { set: [], clear: ['Stalled', 'Reconciling'] }, 'a controller that always requeues (storage) clears too');
    assert.deepEqual(conditionEffects({ kind: 'error', err: new Error('io'), timeout: false }, 'X'), { set: [], clear: [] }, 'a plain error tells nobody');
    const w = conditionEffects({ kind: 'waiting', err: new WaitingError('m', 'R', 1) }, 'X');
    assert.deepEqual(w.condition, { type: 'X', status: 'False', reason: 'R', message: 'm' });
    assert.equal(conditionEffects({ kind: 'terminal', err: new StallingError('m', 'S') }, undefined).condition, undefined);
  });

  it('setOwned(Stalled): the owner type is PascalCase of the controller name, and only Stalled is derived', () => {
    assert.equal(stalledConditionType('placement/virtualcluster'), 'PlacementVirtualclusterStalled');
    let cs = setOwned(undefined, STALLED, 'network', { status: 'True', reason: 'InvalidSubnet', message: 'overlaps' }, 1);
    cs = setOwned(cs, STALLED, 'storage', { status: 'False', reason: 'Reconciled', message: 'reconciled' }, 1);
    assert.deepEqual(cs.map((c) => [c.type, c.status]), [['NetworkStalled', 'True'], ['Stalled', 'True'], ['StorageStalled', 'False']]);
    assert.equal(getCondition(cs, 'Stalled')?.message, 'network: overlaps');
  });
});
