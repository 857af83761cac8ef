// The informer over a real (embedded) store: cache, handlers, relist after a broken watch,
// resync from the cache, indexes.

import assert from 'node:assert/strict';
import type { SqliteStore } from '../../api/store/sqlite-store.js';
import { CompactedError, type Store, type Watch, type WatchHandlers, type WatchOptions } from '../../api/store/types.js';
import type { ApiObject } from '../../api/types.js';
import { FakeClock } from '../../controllers/clock.js';
import { Informer, RESYNC_SLICES, cacheKey } from '../../controllers/informer.js';
import { tempSqliteStore, waitFor, type TempSqliteStore } from './helpers.js';

/** Lets a test break every open watch of the real store it wraps, as a lost connection would. */
function breakable(store: Store): { store: Store; breakWatches(err: Error): void; watches(): number } {
  const open = new Set<{ w: Watch; h: WatchHandlers<ApiObject> }>();
  let opened = 0;
  const wrapped = new Proxy(store, {
    get(target, prop) {
      if (prop === 'watch') {
        return (kind: string, opts: WatchOptions, h: WatchHandlers<ApiObject>) => {
          opened++;
          const entry = { w: target.watch(kind, opts, h), h };
          open.add(entry);
          return { close: () => { open.delete(entry); entry.w.close(); } };
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return {
    store: wrapped,
    breakWatches(err) {
      for (const e of [...open]) { open.delete(e); e.w.close(); e.h.onError(err); }
    },
    watches: () => opened,
  };
}

const obj = (name: string, ns: string, v: number, extra: Partial<ApiObject['metadata']> = {}): ApiObject =>
  ({ apiVersion: 'test/v1', kind: 'Widget', metadata: { name, namespace: ns, ...extra }, spec: { v } });

describe('Informer', function () {
  this.timeout(30_000);
  let tmp: TempSqliteStore;
  let raw: SqliteStore;
  beforeEach(() => {
    tmp = tempSqliteStore(5);
    raw = tmp.store;
  });
  afterEach(() => tmp.close());

  /** What handlers have told: key -> resourceVersion, and every (key, rv) delivered. */
  function view(inf: Informer) {
    const seen = new Map<string, string>();
    const deliveries: string[] = [];
    inf.addHandlers({
      onAdd: (o) => { assert.ok(!seen.has(cacheKey(o.metadata)), `add of a known ${o.metadata.name}`); seen.set(cacheKey(o.metadata), o.metadata.resourceVersion!); deliveries.push(`${cacheKey(o.metadata)}@${o.metadata.resourceVersion}`); },
      onUpdate: (old, o) => { assert.equal(seen.get(cacheKey(old.metadata)), old.metadata.resourceVersion); seen.set(cacheKey(o.metadata), o.metadata.resourceVersion!); deliveries.push(`${cacheKey(o.metadata)}@${o.metadata.resourceVersion}`); },
      onDelete: (o) => { assert.ok(seen.delete(cacheKey(o.metadata)), `delete of an unknown ${o.metadata.name}`); },
    });
    return { seen, deliveries };
  }

  async function storeView(store: Store): Promise<Map<string, string>> {
    const { items } = await store.list('Widget');
    return new Map(items.map((o) => [cacheKey(o.metadata), o.metadata.resourceVersion!]));
  }

  it('lists, then follows the watch; handlers see each version once and end equal to the store', async () => {
    await raw.create(obj('a', 'n1', 1));
    await raw.create(obj('b', 'n2', 1));
    const inf = new Informer(raw, 'Widget');
    const v = view(inf);
    inf.start();
    await inf.waitForSync();
    assert.equal(inf.size(), 2);
    const b = await raw.get({ kind: 'Widget', namespace: 'n2', name: 'b' });
    await raw.update({ ...b, spec: { v: 2 } });
    await raw.create(obj('c', 'n1', 1));
    await raw.delete({ kind: 'Widget', namespace: 'n1', name: 'a' });
    const want = await storeView(raw);
    await waitFor('caught up', () => inf.lastRevision() >= Number([...want.values()].sort().pop()));
    await waitFor('handlers equal the store', async () => JSON.stringify([...v.seen].sort()) === JSON.stringify([...(await storeView(raw))].sort()));
    assert.equal(new Set(v.deliveries).size, v.deliveries.length, 'no version delivered twice');
    inf.stop();
  });

  it('delivers every object a batch writes at one revision', async () => {
    await raw.create(obj('a', 'n1', 1));
    await raw.create(obj('b', 'n1', 1));
    const inf = new Informer(raw, 'Widget');
    const v = view(inf);
    inf.start();
    await inf.waitForSync();
    const [a, b] = await Promise.all(['a', 'b'].map((name) => raw.get({ kind: 'Widget', namespace: 'n1', name })));
    await raw.batch([{ op: 'update', object: { ...a!, spec: { v: 2 } } }, { op: 'update', object: { ...b!, spec: { v: 2 } } }]);
    await waitFor('handlers equal the store', async () => JSON.stringify([...v.seen].sort()) === JSON.stringify([...(await storeView(raw))].sort()), 5_000);
    inf.stop();
  });

  for (const err of [new CompactedError('compacted'), new Error('connection reset')]) {
    it(`after a broken watch (${err.message}) it lists again and delivers the difference, nothing lost or doubled`, async () => {
      const b = breakable(raw);
      for (const n of ['a', 'b', 'c', 'd']) await raw.create(obj(n, 'n1', 1));
      const inf = new Informer(b.store, 'Widget', { relistBackoffMs: { min: 200, max: 200 } });
      const v = view(inf);
      inf.start();
      await inf.waitForSync();
      await waitFor('watching', () => b.watches() === 1);
      b.breakWatches(err);
      // Changes while no watch runs: a delete, an update, a create, and a delete-then-recreate.
      await raw.delete({ kind: 'Widget', namespace: 'n1', name: 'a' });
      const bb = await raw.get({ kind: 'Widget', namespace: 'n1', name: 'b' });
      await raw.update({ ...bb, spec: { v: 2 } });
      await raw.create(obj('e', 'n1', 1));
      await raw.delete({ kind: 'Widget', namespace: 'n1', name: 'c' });
      await raw.create(obj('c', 'n1', 9));
      await waitFor('relisted and watching again', () => inf.lists === 2 && b.watches() === 2);
      // And the new watch works.
      await raw.create(obj('f', 'n1', 1));
      await waitFor('handlers equal the store', async () => JSON.stringify([...v.seen].sort()) === JSON.stringify([...(await storeView(raw))].sort()));
      assert.equal(new Set(v.deliveries).size, v.deliveries.length, 'no version delivered twice');
      assert.deepEqual([...v.seen.keys()].sort(), ['n1/b', 'n1/c', 'n1/d', 'n1/e', 'n1/f']);
      inf.stop();
    });
  }

  it('resyncs from the cache on its own clock without store reads', async () => {
    await raw.create(obj('a', 'n1', 1));
    await raw.create(obj('b', 'n1', 1));
    const clock = new FakeClock();
    const inf = new Informer(raw, 'Widget', { clock });
    const resynced: string[] = [];
    inf.addHandlers({ onUpdate: (o, n) => { if (o === n) resynced.push(n.metadata.name); } }, 1000);
    inf.start();
    await inf.waitForSync();
    clock.step(1000);
    assert.deepEqual(resynced.sort(), ['a', 'b']);
    clock.step(1000);
    assert.equal(resynced.length, 4);
    assert.equal(inf.lists, 1);
    inf.stop();
  });

  it('spreads a resync over its period: each object once per period, a slice per step, a deleted one skipped, an added one from the next period', async () => {
    for (let i = 0; i < 40; i++) await raw.create(obj(`w${String(i).padStart(2, '0')}`, 'n1', 1));
    const clock = new FakeClock();
    const inf = new Informer(raw, 'Widget', { clock });
    const resynced: string[] = [];
    inf.addHandlers({ onUpdate: (o, n) => { if (o === n) resynced.push(n.metadata.name); } }, 1000);
    inf.start();
    await inf.waitForSync();
    const step = 1000 / RESYNC_SLICES;
    let most = 0;
    for (let t = 0; t < 1000; t += step) {
      const before = resynced.length;
      clock.step(step);
      most = Math.max(most, resynced.length - before);
      if (t === 9 * step) {
        // Half-way through the period: one object not yet resynced goes, one comes.
        const gone = (await raw.list('Widget')).items.map((o) => o.metadata.name).find((n) => !resynced.includes(n))!;
        await raw.delete({ kind: 'Widget', namespace: 'n1', name: gone });
        await raw.create(obj('late', 'n1', 1));
        await waitFor('the informer sees both', () => !inf.get({ namespace: 'n1', name: gone }) && !!inf.get({ namespace: 'n1', name: 'late' }));
      }
    }
    assert.equal(most, 40 / RESYNC_SLICES, 'a slice per step, not all at once');
    assert.equal(resynced.length, 39, 'each object once, the deleted one not');
    assert.equal(new Set(resynced).size, 39);
    assert.ok(!resynced.includes('late'));
    clock.step(1000);
    assert.equal(resynced.length, 39 + 40, 'the next period: the added one too');
    assert.ok(resynced.includes('late'));
    inf.stop();
  });

  it('indexes by namespace, labels and owner uid', async () => {
    await raw.create(obj('a', 'n1', 1, { labels: { tier: 'x' }, ownerReferences: [{ apiVersion: 'v', kind: 'Owner', name: 'o', uid: 'u1' }] }));
    await raw.create(obj('b', 'n1', 1, { labels: { tier: 'y' } }));
    await raw.create(obj('c', 'n2', 1, { labels: { tier: 'x' }, ownerReferences: [{ apiVersion: 'v', kind: 'Owner', name: 'o', uid: 'u1' }] }));
    const inf = new Informer(raw, 'Widget');
    inf.start();
    await inf.waitForSync();
    const names = (xs: ApiObject[]) => xs.map((x) => x.metadata.name).sort();
    assert.deepEqual(names(inf.list({ namespace: 'n1' })), ['a', 'b']);
    assert.deepEqual(names(inf.list({ labelSelector: 'tier=x' })), ['a', 'c']);
    assert.deepEqual(names(inf.list({ namespace: 'n1', labelSelector: 'tier!=x' })), ['b']);
    assert.deepEqual(names(inf.listByOwner('u1')), ['a', 'c']);
    const a = await raw.get({ kind: 'Widget', namespace: 'n1', name: 'a' });
    await raw.update({ ...a, metadata: { ...a.metadata, ownerReferences: [] } });
    await waitFor('owner index updated', () => inf.listByOwner('u1').length === 1);
    assert.equal(inf.get({ namespace: 'n1', name: 'a' })?.metadata.ownerReferences?.length, 0);
    inf.stop();
  });
});
