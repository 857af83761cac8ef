// The indexes and filters issue 25 added for scale, on the embedded store: the informer's label
// index answers a selector with an equality exactly as a full pass would (labels added, changed,
// removed, objects deleted, other namespaces, other clauses), and mapOnChange passes an event
// only when the signature changed or the object is gone; perCacheState recomputes exactly when
// an informer of its kinds moved.

import assert from 'node:assert/strict';
import type { ApiObject } from '../../api/types.js';
import { matchesLabelSelector, parseLabelSelector } from '../../api/store/label-selector.js';
import { Informer } from '../../controllers/informer.js';
import { Hash53, byIndex, cachedCount, hash53, mapOnChange, perCacheState } from '../../controllers/change-filter.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { SharedCache } from '../../controllers/cache.js';
import { tempSqliteStore, waitFor, type TempSqliteStore } from './helpers.js';

const widget = (name: string, ns: string, labels: Record<string, string> | undefined, v = 0): ApiObject =>
  ({ apiVersion: 'test/v1', kind: 'Widget', metadata: { name, namespace: ns, ...(labels ? { labels } : {}) }, spec: { v } });

describe('scale indexes', function () {
  this.timeout(30_000);
  let tmp: TempSqliteStore;
  beforeEach(() => (tmp = tempSqliteStore(5)));
  afterEach(() => tmp.close());

  it('the informer answers equality selectors from its label index exactly as a full pass', async () => {
    const store = tmp.store;
    for (let i = 0; i < 30; i++) await store.create(widget(`w${i}`, i % 2 ? 'a' : 'b', { c: `x${i % 3}`, ...(i % 5 ? { t: 'y' } : {}) }));
    const inf = new Informer(store, 'Widget');
    inf.start();
    await inf.waitForSync();
    // relabel some, drop labels of some, delete some
    for (let i = 0; i < 30; i += 4) {
      const cur = await store.get<ApiObject>({ kind: 'Widget', namespace: i % 2 ? 'a' : 'b', name: `w${i}` });
      await store.update({ ...cur, metadata: { ...cur.metadata, labels: i % 8 ? { c: 'x1' } : undefined } });
    }
    for (const i of [3, 9, 27]) await store.delete({ kind: 'Widget', namespace: 'a', name: `w${i}` });
    const rev = await store.revision();
    await waitFor('the informer at the last write', () => inf.lastRevision() >= rev || undefined, 10_000);
    const all = (await store.list<ApiObject>('Widget')).items;
    const names = (xs: ApiObject[]) => xs.map((o) => `${o.metadata.namespace}/${o.metadata.name}`).sort();
    for (const sel of ['c=x1', 'c=x0,t=y', 'c==x2,t!=y', 'c=x1,t', 'c=nope', 'c in (x0,x1)', 't']) {
      for (const namespace of [undefined, 'a', 'b']) {
        const want = all.filter((o) => (namespace === undefined || o.metadata.namespace === namespace) && matchesLabelSelector(parseLabelSelector(sel), o.metadata.labels));
        assert.deepEqual(names(inf.list({ labelSelector: sel, namespace })), names(want), `${sel} in ${namespace ?? 'all'}`);
      }
    }
    inf.stop();
  });

  it('an informer indexer answers as a pass over the kind, through writes, deletes and an index added late', async () => {
    const store = tmp.store;
    const v = (o: ApiObject) => (o.spec as { v: number }).v;
    const of = (o: ApiObject): string[] => (v(o) < 0 ? [] : [`v${v(o) % 4}`, ...(v(o) > 10 ? ['big'] : [])]);
    for (let i = 0; i < 20; i++) await store.create(widget(`w${i}`, 'a', undefined, i));
    const inf = new Informer(store, 'Widget');
    inf.start();
    await inf.waitForSync();
    const cache = { informer: () => inf, list: () => inf.list(), get: () => undefined } as never;
    assert.deepEqual(byIndex(cache, 'Widget', 'mod', of, 'v1').map((o) => o.metadata.name).sort(), ['w1', 'w13', 'w17', 'w5', 'w9'], 'built from the objects held');
    for (let i = 0; i < 20; i += 3) {
      const cur = await store.get<ApiObject>({ kind: 'Widget', namespace: 'a', name: `w${i}` });
      await store.update({ ...cur, spec: { v: i % 2 ? -1 : i + 1 } });
    }
    for (const i of [5, 13]) await store.delete({ kind: 'Widget', namespace: 'a', name: `w${i}` });
    await store.create(widget('w99', 'a', undefined, 99));
    const rev = await store.revision();
    await waitFor('the informer at the last write', () => inf.lastRevision() >= rev || undefined, 10_000);
    const all = (await store.list<ApiObject>('Widget')).items;
    for (const value of ['v0', 'v1', 'v2', 'v3', 'big', 'none']) {
      const want = all.filter((o) => of(o).includes(value)).map((o) => o.metadata.name).sort();
      assert.deepEqual(inf.byIndex('mod', value).map((o) => o.metadata.name).sort(), want, value);
      // a plain reader (no informer) gets the same from a pass
      const plain = { list: () => all, get: () => undefined } as never;
      assert.deepEqual(byIndex(plain, 'Widget', 'mod', of, value).map((o) => o.metadata.name).sort(), want, `${value}, plain reader`);
    }
    assert.deepEqual(inf.byIndex('never-added', 'v1'), []);
    inf.stop();
  });

  it('mapOnChange passes the first event, a changed signature and a deletion; not a same-signature write', () => {
    const present = new Set<string>(['w1']);
    const cache = { get: (r: { name: string }) => (present.has(r.name) ? widget(r.name, 'a', undefined) : undefined), list: () => [] };
    const map = mapOnChange(cache as never, (o) => (o.spec as { v: number }).v, () => [{ kind: 'Node', name: 'n1' }]);
    assert.equal(map(widget('w1', 'a', undefined, 1)).length, 1, 'first event');
    assert.equal(map(widget('w1', 'a', { status: 'x' }, 1)).length, 0, 'same signature');
    assert.equal(map(widget('w1', 'a', undefined, 2)).length, 1, 'changed');
    present.delete('w1');
    assert.equal(map(widget('w1', 'a', undefined, 2)).length, 1, 'deleted');
    present.add('w1');
    assert.equal(map(widget('w1', 'a', undefined, 2)).length, 1, 'created again');
  });

  it('mapOnChange keeps a hash per object, not its signature (129 MiB of signatures at 10,000 VMs: bench-scale heap profile)', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const cache = { get: (r: { name: string }) => widget(r.name, 'a', undefined), list: () => [] };
    const map = mapOnChange(cache as never, (o) => o.spec, () => [{ kind: 'Node', name: 'n1' }]);
    gc();
    const before = process.memoryUsage().heapUsed;
    // 3,000 objects with 4 KiB signatures: ~12 MiB kept as JSON
    for (let i = 0; i < 3_000; i++) map({ ...widget(`big${i}`, 'a', undefined), spec: { text: `${i} ${'y'.repeat(4096)}` } });
    gc();
    const grown = (process.memoryUsage().heapUsed - before) / (1024 * 1024);
    assert.ok(grown < 2, `the mapper keeps ${grown.toFixed(1)} MiB for 3,000 objects`);
    // still told apart: the same signature passes nothing, another passes
    assert.equal(map({ ...widget('big7', 'a', undefined), spec: { text: `7 ${'y'.repeat(4096)}` } }).length, 0);
    assert.equal(map({ ...widget('big7', 'a', undefined), spec: { text: `7 ${'y'.repeat(4095)}z` } }).length, 1);
    const hashes = new Set(Array.from({ length: 20_000 }, (_, i) => hash53(JSON.stringify([i, 'Running', `sim${i % 1000}`]))));
    assert.equal(hashes.size, 20_000, 'no two of 20,000 signatures alike');
    // fed in parts, as of the whole text
    assert.equal(new Hash53().update('10.0.0.2/32').update(' ').update('vt0123456789').digest(), hash53('10.0.0.2/32 vt0123456789'));
    assert.notEqual(new Hash53().update('ab').update('c').digest(), hash53('ab'));
  });

  it('perCacheState computes once per state of its kinds and again after a write of one of them', async () => {
    const store = tmp.store;
    await store.create(widget('w1', 'a', undefined, 1));
    const widgets = new Informer(store, 'Widget');
    const others = new Informer(store, 'Other');
    for (const inf of [widgets, others]) inf.start();
    await Promise.all([widgets.waitForSync(), others.waitForSync()]);
    const informers = new Map([['Widget', widgets], ['Other', others]]);
    const cache = {
      informer: (k: string) => informers.get(k)!,
      get: () => undefined,
      list: <T extends ApiObject>() => widgets.list() as T[],
    };
    let computed = 0;
    const sum = perCacheState(['Widget'], (c) => {
      computed++;
      return c.list<ApiObject>('Widget').reduce((n, o) => n + (o.spec as { v: number }).v, 0);
    });
    assert.equal(sum(cache), 1);
    assert.equal(sum(cache), 1);
    assert.equal(computed, 1, 'the same state: kept');
    await store.create({ ...widget('o1', 'a', undefined), kind: 'Other' });
    await waitFor('the Other informer', () => others.lastRevision() >= 0 && others.list().length === 1 || undefined, 10_000);
    assert.equal(sum(cache), 1);
    assert.equal(computed, 1, 'a write of another kind: kept');
    await store.create(widget('w2', 'a', undefined, 5));
    await waitFor('the Widget informer', () => widgets.list().length === 2 || undefined, 10_000);
    assert.equal(sum(cache), 6, 'a write of its kind: computed again');
    assert.equal(computed, 2);
    // a plain reader (no informers): computed at each call
    const plain = { get: () => undefined, list: <T extends ApiObject>() => [widget('x', 'a', undefined, 7)] as T[] };
    assert.equal(sum(plain), 7);
    assert.equal(sum(plain), 7);
    assert.equal(computed, 4);
    for (const inf of [widgets, others]) inf.stop();
  });

  it('cachedCount: the informer\'s size without a list; a plain reader\'s list length', async () => {
    const store = tmp.store;
    for (let i = 0; i < 7; i++) await store.create(widget(`c${i}`, 'a', undefined));
    const cache = new SharedCache(store);
    cache.informer('Widget');
    cache.start();
    await cache.waitForSync();
    let lists = 0;
    const counted = new Proxy(cache, { get: (t, p) => (p === 'list' ? (...a: unknown[]) => { lists++; return (t.list as (...x: unknown[]) => unknown)(...a); } : Reflect.get(t, p, t)) });
    assert.equal(cachedCount(counted, 'Widget'), 7);
    assert.equal(lists, 0, 'no list for a count');
    await store.delete({ kind: 'Widget', namespace: 'a', name: 'c0' });
    await waitFor('the delete in the cache', () => cachedCount(cache, 'Widget') === 6 || undefined, 10_000);
    cache.stop();
    const plain = { get: () => undefined, list: <T extends ApiObject>() => [widget('p', 'a', undefined)] as T[] };
    assert.equal(cachedCount(plain, 'Widget'), 1);
  });
});
