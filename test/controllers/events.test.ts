// The EventRecorder on a real embedded store: de-duplication with count and timestamps, a write
// rate bounded by the token bucket, expiry after an hour, and nothing written through a lost fence.

import assert from 'node:assert/strict';
import type { SqliteStore } from '../../api/store/sqlite-store.js';
import { API_VERSION, type EventObject } from '../../api/types.js';
import { StoreEventRecorder, eventName, expireEvents } from '../../controllers/events.js';
import { FencedStore } from '../../controllers/fenced-store.js';
import { tempSqliteStore, type TempSqliteStore } from './helpers.js';

const vc = { kind: 'VirtualCluster', metadata: { name: 'stripes', namespace: 'default', uid: 'u-1' } };

describe('StoreEventRecorder', function () {
  this.timeout(20_000);
  let tmp: TempSqliteStore;
  let store: SqliteStore;
  beforeEach(() => {
    tmp = tempSqliteStore();
    store = tmp.store;
  });
  afterEach(() => tmp.close());
  const events = async () => (await store.list<EventObject>('Event', { namespace: 'default' })).items;

  it('de-duplicates by object, type, reason and message; counts and keeps first/last timestamps', async () => {
    const r = new StoreEventRecorder(store, { source: 'test' });
    r.record(vc, 'Warning', 'Unschedulable', 'no node fits stripes-3');
    await r.flush();
    const first = (await events())[0]!;
    await new Promise((res) => setTimeout(res, 20));
    for (let i = 0; i < 4; i++) r.record(vc, 'Warning', 'Unschedulable', 'no node fits stripes-3');
    r.record(vc, 'Normal', 'NodeCreated', 'created VirtualNode stripes-0');
    await r.flush();
    const evs = await events();
    assert.equal(evs.length, 2);
    const w = evs.find((e) => e.spec?.reason === 'Unschedulable')!;
    assert.equal(w.metadata.name, eventName({ kind: 'VirtualCluster', name: 'stripes', namespace: 'default', uid: 'u-1' }, 'Warning', 'Unschedulable', 'no node fits stripes-3'));
    assert.equal(w.spec?.count, 5);
    assert.equal(w.spec?.firstTimestamp, first.spec?.firstTimestamp);
    assert.ok(w.spec!.lastTimestamp > w.spec!.firstTimestamp);
    assert.deepEqual(w.spec?.involvedObject, { kind: 'VirtualCluster', name: 'stripes', namespace: 'default', uid: 'u-1' });
    assert.equal(w.spec?.source, 'test');
    // A second recorder (another manager, a restart) finds the same Event.
    const r2 = new StoreEventRecorder(store, { source: 'other' });
    r2.record(vc, 'Warning', 'Unschedulable', 'no node fits stripes-3');
    await r2.flush();
    assert.equal((await events()).find((e) => e.spec?.reason === 'Unschedulable')?.spec?.count, 6);
  });

  it('a storm of distinct events is written at the bucket rate, all of them eventually', async () => {
    const r = new StoreEventRecorder(store, { source: 'test', qps: 50, burst: 5 });
    const t0 = Date.now();
    for (let i = 0; i < 20; i++) r.record(vc, 'Normal', 'Tick', `tick ${i}`);
    await r.flush();
    const took = Date.now() - t0;
    assert.equal((await events()).length, 20);
    assert.ok(took >= 250, `15 writes beyond the burst at 50/s take >= 300 ms; took ${took}`);
  });

  it('holds at most maxPending distinct events waiting; a new one beyond is dropped and counted, a repeat still counted', async () => {
    const r = new StoreEventRecorder(store, { source: 'test', qps: 100, burst: 1, maxPending: 10 });
    // The first is taken at once by the writer; ten wait; the other 39 find the queue full.
    for (let i = 0; i < 50; i++) r.record(vc, 'Normal', 'Tick', `tick ${i}`);
    assert.equal(r.pendingCount(), 10);
    assert.equal(r.dropped, 39);
    r.record(vc, 'Normal', 'Tick', 'tick 5');
    assert.equal(r.dropped, 39, 'a repeat of a waiting event is aggregated, not dropped');
    await r.flush();
    const evs = await events();
    assert.deepEqual(evs.map((e) => e.spec!.message).sort(), Array.from({ length: 11 }, (_v, i) => `tick ${i}`).sort());
    assert.equal(evs.find((e) => e.spec!.message === 'tick 5')!.spec!.count, 2);
  });

  it('expireEvents removes Events last seen more than an hour ago', async () => {
    const mk = (name: string, last: string) => store.create<EventObject>({
      apiVersion: API_VERSION, kind: 'Event', metadata: { name, namespace: 'default' },
      spec: { involvedObject: { kind: 'VirtualCluster', name: 'x' }, type: 'Normal', reason: 'R', message: name, count: 1, firstTimestamp: last, lastTimestamp: last },
    });
    const now = Date.parse('2026-06-01T12:00:00Z');
    await mk('old', '2026-06-01T10:59:00Z');
    await mk('recent', '2026-06-01T11:30:00Z');
    assert.equal(await expireEvents(store, 60 * 60_000, now), 1);
    assert.deepEqual((await events()).map((e) => e.metadata.name), ['recent']);
  });

  it('records nothing through a store whose fence is gone', async () => {
    const r = new StoreEventRecorder(new FencedStore(store, { currentFence: () => undefined }), { source: 'deposed' });
    r.record(vc, 'Normal', 'X', 'y');
    await r.flush();
    assert.equal((await events()).length, 0);
    assert.equal(r.written, 0);
  });
});
