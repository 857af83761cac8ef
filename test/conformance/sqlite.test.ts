// The Store conformance suite on the embedded SQLite backend, plus what only it promises: several
// store instances (processes) on one file see each other's writes and watches, and data survives
// close and reopen.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import { ConflictError } from '../../api/store/types.js';
import { collect, describeStoreConformance, waitFor, widget } from './store-conformance.js';

describeStoreConformance('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vl-sqlite-'));
  const store = new SqliteStore(join(dir, 'store.db'));
  return {
    store,
    compact: (rev) => store.compact(rev),
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('SqliteStore on one file from several instances', () => {
  let dir: string;
  const open: SqliteStore[] = [];
  const openStore = (): SqliteStore => {
    const s = new SqliteStore(join(dir, 'sub', 'store.db'));
    open.push(s);
    return s;
  };
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'vl-sqlite-')); });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('two instances see each other\'s writes and watches', async () => {
    const a = openStore();
    const b = openStore();
    const w = collect(b, 'Widget', (await b.revision()) + 1);
    const created = await a.create(widget('x'));
    assert.deepEqual(await b.get({ kind: 'Widget', namespace: 'default', name: 'x' }), created);
    await waitFor('b to see the create', () => w.events.length === 1);
    assert.deepEqual(w.events[0].object, created);
    const u = await b.update({ ...created, spec: { size: 2 } });
    await assert.rejects(a.update({ ...created, spec: { size: 3 } }), ConflictError);
    assert.equal(await a.revision(), Number(u.metadata.resourceVersion));
    w.watch.close();
  });

  it('keeps data, revision and leases across close and reopen', async () => {
    const a = openStore();
    const o = await a.create(widget('kept'));
    const lease = await a.leases.grant(60);
    const rev = await a.leases.putIfAbsent('k', 'v', lease);
    const head = await a.revision();
    open.splice(open.indexOf(a), 1);
    await a.close();
    await assert.rejects(a.revision(), /closed/);
    const b = openStore();
    assert.equal(await b.revision(), head);
    assert.deepEqual(await b.get({ kind: 'Widget', namespace: 'default', name: 'kept' }), o);
    assert.deepEqual(await b.leases.getRaw('k'), { value: 'v', createRevision: rev });
    const n = await b.create(widget('next'));
    assert.equal(n.metadata.resourceVersion, String(head + 1));
  });

  it('compacts the change log by size', async () => {
    const s = new SqliteStore(join(dir, 'small.db'), { maxChanges: 50 });
    open.push(s);
    const first = await s.create(widget('w0'));
    for (let i = 1; i < 1100; i++) await s.create(widget(`w${i}`));
    const w = collect(s, 'Widget', Number(first.metadata.resourceVersion));
    await waitFor('a compaction error', () => w.errors.length === 1);
    assert.equal(w.errors[0].name, 'CompactedError');
    const recent = collect(s, 'Widget', (await s.revision()) - 10);
    await waitFor('11 recent events', () => recent.events.length === 11);
    recent.watch.close();
  });

  it('compacts the change log by age', async () => {
    const s = new SqliteStore(join(dir, 'aged.db'), { retainChangesMs: 100 });
    open.push(s);
    const a = await s.create(widget('a'));
    const w = collect(s, 'Widget', Number(a.metadata.resourceVersion));
    await waitFor('the event', () => w.events.length === 1);
    await new Promise((r) => setTimeout(r, 200));
    const b = await s.create(widget('b'));
    const old = collect(s, 'Widget', Number(a.metadata.resourceVersion));
    await waitFor('a compaction error', () => old.errors.length === 1);
    assert.equal(old.errors[0].name, 'CompactedError');
    const fresh = collect(s, 'Widget', Number(b.metadata.resourceVersion));
    await waitFor('b', () => fresh.events.length === 1);
    assert.deepEqual(w.events.map((e) => e.object.metadata.name), ['a', 'b'], 'a watch that kept up is not affected');
    w.watch.close();
    fresh.watch.close();
  });
});
