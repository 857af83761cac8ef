// WrittenRevisions (controllers/read-your-writes.ts) on the embedded store: the cache serves a
// key's objects only once it holds every version written through `track` or read from the store
// under that key; a key never seen is not fresh; a delete is waited for too; a cache that does not
// move is not fresh after the wait.

import assert from 'node:assert/strict';
import type { ApiObject } from '../../api/types.js';
import { SharedCache } from '../../controllers/cache.js';
import { WrittenRevisions } from '../../controllers/read-your-writes.js';
import { tempSqliteStore, type TempSqliteStore } from './helpers.js';

const widget = (name: string, v = 0): ApiObject => ({ apiVersion: 'test/v1', kind: 'Widget', metadata: { name, namespace: 'ns' }, spec: { v } });
const ref = (name: string) => ({ kind: 'Widget', namespace: 'ns', name });

describe('WrittenRevisions: read-your-writes over the cache', function () {
  this.timeout(30_000);
  let tmp: TempSqliteStore;
  let cache: SharedCache;
  beforeEach(async () => {
    tmp = tempSqliteStore(5);
    cache = new SharedCache(tmp.store);
    cache.informer('Widget');
    cache.start();
    await cache.waitForSync();
  });
  afterEach(async () => {
    cache.stop();
    await tmp.close();
  });

  it('fresh once the cache holds every write of the key (create, update, status, delete); never for an unseen key', async () => {
    const revs = new WrittenRevisions('Widget', 5_000);
    assert.equal(await revs.fresh(cache, 'k'), false, 'a key never written nor read');
    const store = revs.track(tmp.store, 'k');
    await store.create(widget('a'));
    let cur = await tmp.store.get(ref('a'));
    await store.update({ ...cur, spec: { v: 1 } });
    cur = await tmp.store.get(ref('a'));
    const written = await store.updateStatus({ ...cur, status: { n: 2 } });
    assert.equal(await revs.fresh(cache, 'k'), true);
    assert.equal(cache.get(ref('a'))?.metadata.resourceVersion, written.metadata.resourceVersion, 'the cache holds the last write when fresh');
    await store.create(widget('b'));
    await store.delete(ref('b'));
    assert.equal(await revs.fresh(cache, 'k'), true);
    assert.equal(cache.get(ref('b')), undefined, 'the delete is in the cache when fresh');
  });

  it('a read from the store sets the bar; a cache that does not move is not fresh after the wait', async () => {
    const revs = new WrittenRevisions('Widget', 100);
    await tmp.store.create(widget('c'));
    revs.saw('r', [await tmp.store.get(ref('c'))]);
    assert.equal(await revs.fresh(cache, 'r'), true);
    cache.stop(); // the informer stops: later writes never reach it
    const after = await tmp.store.update({ ...(await tmp.store.get(ref('c'))), spec: { v: 9 } });
    revs.saw('r', [after]);
    assert.equal(await revs.fresh(cache, 'r'), false);
    revs.forget('r');
    assert.equal(await revs.fresh(cache, 'r'), false, 'forgotten: read the store again');
  });
});
