// The controller runtime's outcome handling, on a real embedded store without leader election.

import assert from 'node:assert/strict';
import type { SqliteStore } from '../../api/store/sqlite-store.js';
import type { ApiObject } from '../../api/types.js';
import { ControllerManager } from '../../controllers/manager.js';
import { Controller } from '../../controllers/controller.js';
import { SharedCache } from '../../controllers/cache.js';
import { FakeClock } from '../../controllers/clock.js';
import { silentLogger } from '../../controllers/log.js';
import { ManagerMetrics } from '../../controllers/metrics.js';
import type { ControllerSpec, ReconcileContext } from '../../controllers/types.js';
import { sleep, tempSqliteStore, waitFor, type TempSqliteStore } from './helpers.js';

const widget = (name: string, v = 0): ApiObject => ({ apiVersion: 'test/v1', kind: 'Widget', metadata: { name, namespace: 'ns' }, spec: { v } });
const ref = (name: string) => ({ kind: 'Widget', namespace: 'ns', name });

describe('Controller outcomes', function () {
  this.timeout(30_000);
  let tmp: TempSqliteStore;
  let store: SqliteStore;
  let manager: ControllerManager | undefined;
  beforeEach(() => {
    tmp = tempSqliteStore(5);
    store = tmp.store;
  });
  afterEach(async () => {
    await manager?.stop();
    manager = undefined;
    await tmp.close();
  });

  async function run(spec: ControllerSpec, metrics?: ManagerMetrics): Promise<void> {
    manager = new ControllerManager({ store, identity: 't', leaderElection: false, specs: [spec], eventCleanupMs: 0, metrics });
    await manager.start();
  }

  it('never reconciles one key on two workers at once, and reconciles again after changes made meanwhile', async () => {
    const inFlight = new Set<string>();
    let overlap = 0;
    const lastSeen = new Map<string, number>();
    await run({
      name: 'slow', forKind: 'Widget', workers: 8,
      async reconcile(key, ctx) {
        if (inFlight.has(key.name)) overlap++;
        inFlight.add(key.name);
        const o = await ctx.store.get(key);
        await sleep(20);
        lastSeen.set(key.name, (o.spec as { v: number }).v);
        inFlight.delete(key.name);
      },
    });
    await store.create(widget('a'));
    await store.create(widget('b'));
    for (let v = 1; v <= 20; v++) {
      for (const n of ['a', 'b']) {
        const o = await store.get(ref(n));
        await store.update({ ...o, spec: { v } });
      }
      await sleep(3);
    }
    await waitFor('last versions reconciled', () => lastSeen.get('a') === 20 && lastSeen.get('b') === 20);
    assert.equal(overlap, 0);
  });

  it('requeueAfter brings the key back after the delay; errors back off exponentially, then success forgets', async () => {
    const calls: { name: string; at: number }[] = [];
    await run({
      name: 'outcomes', forKind: 'Widget',
      async reconcile(key) {
        calls.push({ name: key.name, at: Date.now() });
        const n = calls.filter((c) => c.name === key.name).length;
        if (key.name === 'requeue' && n < 3) return { requeueAfterMs: 200 };
        if (key.name === 'flaky' && n < 6) throw new Error('not yet');
        return undefined;
      },
    });
    await store.create(widget('requeue'));
    await store.create(widget('flaky'));
    await waitFor('requeued twice', () => calls.filter((c) => c.name === 'requeue').length === 3);
    await waitFor('flaky succeeded', () => calls.filter((c) => c.name === 'flaky').length === 6);
    const rq = calls.filter((c) => c.name === 'requeue').map((c) => c.at);
    assert.ok(rq[1]! - rq[0]! >= 190 && rq[2]! - rq[1]! >= 190, `requeue gaps ${rq[1]! - rq[0]!}, ${rq[2]! - rq[1]!}`);
    const fl = calls.filter((c) => c.name === 'flaky').map((c) => c.at);
    const gaps = fl.slice(1).map((t, i) => t - fl[i]!);
    // 5, 10, 20, 40, 80 ms: the last gaps grow.
    assert.ok(gaps[4]! >= 70 && gaps[3]! >= 35, `backoff gaps ${gaps.join(',')}`);
    await sleep(300);
    assert.equal(calls.filter((c) => c.name === 'flaky').length, 6, 'no retry after success');
    const c = manager!.activeControllers()[0]!;
    assert.equal(c.counts.error, 5);
    assert.equal(c.queue.numRequeues('ns/flaky'), 0, 'success forgot the backoff');
  });

  it('forSignature: a write that keeps the signature queues nothing; a changed signature, a resync and a deletion do', async () => {
    const seen: string[] = [];
    await run({
      name: 'sig', forKind: 'Widget', resyncMs: 4_000,
      forSignature: (o) => o.spec,
      async reconcile(key, ctx) {
        const o = ctx.cache.get<ApiObject>(key);
        seen.push(o ? `v${(o.spec as { v: number }).v}/${(o.status as { n?: number } | undefined)?.n ?? '-'}` : 'gone');
      },
    });
    await store.create(widget('a'));
    await waitFor('the add', () => seen.length === 1);
    // Status-only writes: the signature (the spec) is the same.
    for (let n = 1; n <= 3; n++) {
      const o = await store.get(ref('a'));
      await store.updateStatus({ ...o, status: { n } });
    }
    const o = await store.get(ref('a'));
    await store.update({ ...o, spec: { v: 1 } });
    await waitFor('the spec change', () => seen.includes('v1/3'));
    assert.deepEqual(seen, ['v0/-', 'v1/3'], 'the status writes before the spec change reconciled nothing');
    await waitFor('the resync', () => seen.length === 3);
    assert.equal(seen[2], 'v1/3');
    await store.delete(ref('a'));
    await waitFor('the deletion', () => seen.at(-1) === 'gone');
  });

  // A Gadget of Widget `owner` (controller reference), its spec `{ on }` naming a Widget (watches).
  const gadget = (name: string, owner: string, on: string): ApiObject => ({
    apiVersion: 'test/v1', kind: 'Gadget', metadata: { name, namespace: 'ns', ownerReferences: [{ apiVersion: 'test/v1', kind: 'Widget', name: owner, uid: `uid-${owner}`, controller: true }] }, spec: { on },
  });
  const gref = (name: string) => ({ kind: 'Gadget', namespace: 'ns', name });
  const writeStatus = async (name: string, status: Record<string, unknown>) => {
    const o = await store.get(gref(name));
    await store.updateStatus({ ...o, status });
  };
  /** Runs `spec` recording each reconciled key in `seen`; Widgets a and b and Gadget g (of a, on a) made and reconciled. */
  const withGadget = async (spec: Omit<ControllerSpec, 'reconcile' | 'forKind' | 'resyncMs'>, seen: string[]): Promise<number> => {
    await run({ ...spec, forKind: 'Widget', resyncMs: 0, async reconcile(key) { seen.push(key.name); } });
    await store.create(widget('a'));
    await store.create(widget('b'));
    await store.create(gadget('g', 'a', 'a'));
    await waitFor('the adds', () => seen.filter((n) => n === 'a').length === 2 && seen.includes('b'));
    return seen.length;
  };

  it('ownedSignature: an owned object\'s write that keeps its signature and owners requeues nothing; a changed signature or owner does', async () => {
    const seen: string[] = [];
    const before = await withGadget({ name: 'owner', owns: ['Gadget'], ownedSignature: (o) => (o.status as { phase?: string } | undefined)?.phase }, seen);
    for (let n = 1; n <= 3; n++) await writeStatus('g', { n });
    await writeStatus('g', { n: 4, phase: 'Running' });
    await waitFor('the phase change', () => seen.length > before);
    await sleep(200);
    assert.deepEqual(seen.slice(before), ['a'], 'the three writes that kept the phase requeued nothing; the phase change requeued the owner');
    // a new owner: both the one it leaves and the one it joins are requeued
    const g = await store.get(gref('g'));
    await store.update({ ...g, metadata: { ...g.metadata, ownerReferences: [{ apiVersion: 'test/v1', kind: 'Widget', name: 'b', uid: 'uid-b', controller: true }] } });
    await waitFor('the owner change', () => seen.slice(before + 1).includes('b'));
    await sleep(200);
    assert.deepEqual(seen.slice(before + 1).sort(), ['a', 'b']);
  });

  it('WatchSpec.signature: a write that keeps the signature maps nothing; a changed one maps the old and the new version', async () => {
    const seen: string[] = [];
    const before = await withGadget({
      name: 'watcher',
      watches: [{ kind: 'Gadget', map: (o) => [ref((o.spec as { on: string }).on)], signature: (o) => [o.metadata.generation] }],
    }, seen);
    for (let n = 1; n <= 3; n++) await writeStatus('g', { n });
    // the spec moves g from widget a to widget b: a (the one it leaves) and b are both mapped
    const g = await store.get(gref('g'));
    await store.update({ ...g, spec: { on: 'b' } });
    await waitFor('the move', () => seen.slice(before).includes('b'));
    await sleep(200);
    assert.deepEqual(seen.slice(before).sort(), ['a', 'b'], 'the status writes mapped nothing; the move mapped the old and the new widget');
    await store.delete(gref('g'));
    await waitFor('the deletion', () => seen.slice(before + 2).includes('b'));
  });

  it('progressing: work that ends within PROGRESSING_DELAY_MS writes no Reconciling; store requests are counted per controller', async () => {
    const metrics = new ManagerMetrics();
    let done = 0;
    await run({
      name: 'quick', forKind: 'Widget',
      async reconcile(key, ctx) {
        await ctx.progressing?.('Copying', 'quick work');
        await ctx.store.get(key);
        await sleep(50);
        done++;
      },
    }, metrics);
    await store.create(widget('q'));
    await waitFor('reconciled', () => done === 1);
    await sleep(1_500); // past the delay: a write would have happened by now
    const o = await store.get(ref('q'));
    assert.equal((o.status as { conditions?: unknown[] } | undefined)?.conditions, undefined, 'no condition written for quick work');
    const counted = (await metrics.storeRequests.get()).values.find((v) => v.labels.controller === 'quick' && v.labels.op === 'get');
    assert.equal(counted?.value, 1, 'the reconcile\'s one get, counted under its controller');
  });

  it('a reconcile past its timeout is aborted and retried; a synchronous throw does not stop the worker', async () => {
    const signals: AbortSignal[] = [];
    let hangs = 0;
    let throws = 0;
    await run({
      name: 'bad', forKind: 'Widget', workers: 1, timeoutMs: 100,
      reconcile(key, ctx: ReconcileContext) {
        if (key.name === 'hang') {
          hangs++;
          signals.push(ctx.signal);
          if (hangs < 3) return new Promise(() => undefined);
          return Promise.resolve(undefined);
        }
        throws++;
        if (throws < 3) throw new TypeError('boom');
        return Promise.resolve(undefined);
      },
    });
    await store.create(widget('hang'));
    await store.create(widget('throw'));
    await waitFor('hang done', () => hangs === 3, 10_000);
    await waitFor('throw done', () => throws === 3, 10_000);
    assert.ok(signals[0]!.aborted && signals[1]!.aborted, 'timed-out reconciles saw their signal abort');
    assert.equal(signals[2]!.aborted, false);
    const metrics = manager!.activeControllers()[0]!.counts;
    assert.equal(metrics.error, 4);
    assert.equal(metrics.done, 2);
  });
});

describe('Controller signals', function () {
  this.timeout(30_000);
  it('aborts the signal of every reconcile still running when the manager\'s is aborted, and of no finished one', async () => {
    const tmp = tempSqliteStore(5);
    try {
      const cache = new SharedCache(tmp.store, {});
      const ac = new AbortController();
      const seen = new Map<string, AbortSignal>();
      const c = new Controller({
        name: 'signals', forKind: 'Widget', workers: 4,
        async reconcile(key, ctx) {
          seen.set(key.name, ctx.signal);
          if (key.name.startsWith('hang')) await new Promise((r) => ctx.signal.addEventListener('abort', r, { once: true }));
        },
      }, { cache, store: tmp.store, events: { record() {} }, log: silentLogger(), signal: ac.signal });
      for (const n of ['done', 'hang1', 'hang2']) await tmp.store.create(widget(n));
      cache.start();
      await cache.waitForSync();
      c.start();
      await waitFor('all three started', () => seen.size === 3);
      await waitFor('done settled', () => c.counts.done === 1);
      assert.equal(seen.get('hang1')!.aborted, false);
      ac.abort(new Error('deposed'));
      await waitFor('the running ones aborted', () => seen.get('hang1')!.aborted && seen.get('hang2')!.aborted);
      assert.equal((seen.get('hang1')!.reason as Error).message, 'deposed');
      assert.equal(seen.get('done')!.aborted, false, 'a finished reconcile is no longer aborted with the manager');
      await c.stop();
      cache.stop();
    } finally {
      await tmp.close();
    }
  });
});

describe('Controller resync', function () {
  this.timeout(30_000);
  let tmp: TempSqliteStore;
  beforeEach(() => { tmp = tempSqliteStore(5); });
  afterEach(async () => { await tmp.close(); });

  it('queues a key only when its last reconcile started at least half a period before, spread over the period', async () => {
    const clock = new FakeClock();
    const cache = new SharedCache(tmp.store, { clock });
    const reconciled: string[] = [];
    const busy = new Set<string>();
    const ac = new AbortController();
    const c = new Controller({
      name: 'resync', forKind: 'Widget', resyncMs: 10_000,
      async reconcile(key) {
        reconciled.push(key.name);
        // "busy" keys are reconciled every 2 s by their own requeue.
        return busy.has(key.name) ? { requeueAfterMs: 2_000 } : undefined;
      },
    }, { cache, store: tmp.store, events: { record() {} }, log: silentLogger(), signal: ac.signal, clock });
    for (let i = 0; i < 20; i++) await tmp.store.create(widget(`w${String(i).padStart(2, '0')}`));
    for (let i = 0; i < 10; i++) busy.add(`w${String(i).padStart(2, '0')}`);
    cache.start();
    await cache.waitForSync();
    c.start();
    const settle = async () => { for (let i = 0; i < 20; i++) await sleep(1); await waitFor('the queue drained', () => c.queue.len() === 0); };
    await settle();
    assert.equal(reconciled.length, 20, 'each added once');
    reconciled.length = 0;
    // One period, step by step: the busy keys come back every 2 s on their own (5 times each);
    // the idle ones once by the resync; and never all at once.
    let most = 0;
    for (let t = 0; t < 10_000; t += 500) {
      const before = reconciled.length;
      clock.step(500);
      await settle();
      most = Math.max(most, reconciled.slice(before).filter((n) => !busy.has(n)).length);
    }
    const count = (n: string) => reconciled.filter((x) => x === n).length;
    for (let i = 0; i < 20; i++) {
      const n = `w${String(i).padStart(2, '0')}`;
      assert.equal(count(n), busy.has(n) ? 5 : 1, `${n}: ${count(n)} reconciles`);
    }
    assert.equal(most, 1, 'the idle keys resynced one slice (20 keys / RESYNC_SLICES) at a time');
    ac.abort();
    await c.stop(1_000);
    cache.stop();
  });
});
