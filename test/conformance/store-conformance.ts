// The Store conformance suite: every semantic of api/store/types.ts's header, run unchanged
// against each backend (sqlite.test.ts, etcd.test.ts). Each test gets a fresh, empty store; on a
// shared etcd the fixture gives each test its own key prefix, so tests never assume absolute
// revision numbers, only their order.

import assert from 'node:assert/strict';
import type { ApiObject } from '../../api/types.js';
import {
  AlreadyExistsError, CompactedError, ConflictError, FencedError, NotFoundError, StoreError,
  type Store, type WatchEvent,
} from '../../api/store/types.js';

export interface StoreFixture {
  store: Store;
  /** Forces compaction of the store's history before `revision`. */
  compact(revision: number): Promise<void>;
  /** Closes the store and frees what the fixture made. */
  cleanup(): Promise<void>;
}

type Widget = ApiObject<{ size: number; color?: string }, { phase?: string; ready?: boolean }>;

/** A test object; namespace null makes it cluster-scoped. */
export function widget(name: string, namespace: string | null = 'default', size = 1, labels?: Record<string, string>): Widget {
  return {
    apiVersion: 'test.virtualinux.org/v1',
    kind: 'Widget',
    metadata: { name, ...(namespace ? { namespace } : {}), ...(labels ? { labels } : {}) },
    spec: { size },
  };
}

export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Collects a watch's events and error. */
export function collect(store: Store, kind: string, fromRevision: number, namespace?: string) {
  const events: WatchEvent[] = [];
  const errors: Error[] = [];
  const watch = store.watch(kind, { fromRevision, namespace }, {
    onEvent: (ev) => events.push(ev),
    onError: (err) => errors.push(err),
  });
  return { events, errors, watch };
}

const ref = (name: string, namespace: string | null = 'default') => ({ kind: 'Widget', name, namespace: namespace ?? undefined });

export function describeStoreConformance(name: string, makeStore: () => Promise<StoreFixture>): void {
  describe(`Store conformance: ${name}`, function () {
    this.timeout(30_000);
    let fx: StoreFixture;
    let store: Store;
    const closers: (() => void)[] = [];
    beforeEach(async () => {
      fx = await makeStore();
      store = fx.store;
    });
    afterEach(async () => {
      for (const c of closers.splice(0)) c();
      await fx.cleanup();
    });
    const watch = (kind: string, from: number, ns?: string) => {
      const c = collect(store, kind, from, ns);
      closers.push(() => c.watch.close());
      return c;
    };

    describe('revisions and create', () => {
      it('create assigns uid, creationTimestamp, generation 1 and resourceVersion = the new revision', async () => {
        const before = await store.revision();
        const w = { ...widget('a'), status: { phase: 'Given' } };
        const created = await store.create(w);
        const after = await store.revision();
        assert.ok(after > before, 'the revision advances');
        assert.equal(created.metadata.resourceVersion, String(after));
        assert.equal(created.metadata.generation, 1);
        assert.match(created.metadata.uid ?? '', /^[0-9a-f-]{36}$/);
        assert.match(created.metadata.creationTimestamp ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
        assert.deepEqual(created.status, { phase: 'Given' }, 'create keeps a given status');
        assert.deepEqual(await store.get(ref('a')), created);
        assert.equal(w.metadata.uid, undefined, 'the caller\'s object is not modified');
      });

      it('every write advances the revision; resourceVersions increase', async () => {
        const a = await store.create(widget('a'));
        const b = await store.create(widget('b'));
        const a2 = await store.update({ ...a, spec: { size: 2 } });
        assert.ok(Number(b.metadata.resourceVersion) > Number(a.metadata.resourceVersion));
        assert.ok(Number(a2.metadata.resourceVersion) > Number(b.metadata.resourceVersion));
        assert.equal(await store.revision(), Number(a2.metadata.resourceVersion));
      });

      it('create of an existing object fails with AlreadyExistsError and changes nothing', async () => {
        const a = await store.create(widget('a', 'default', 1));
        await assert.rejects(store.create(widget('a', 'default', 5)), AlreadyExistsError);
        assert.deepEqual(await store.get(ref('a')), a);
        // The same name in another namespace is another object.
        await store.create(widget('a', 'other', 5));
      });

      it('get of a missing object is NotFoundError; tryGet gives undefined', async () => {
        await assert.rejects(store.get(ref('nope')), NotFoundError);
        assert.equal(await store.tryGet(ref('nope')), undefined);
      });

      it('checks the scope of registered kinds', async () => {
        const vc = { apiVersion: 'virtualinux.org/v1alpha1', kind: 'VirtualCluster', metadata: { name: 'x' }, spec: {} };
        await assert.rejects(store.create(vc), (e: Error) => e instanceof StoreError && /namespaced/.test(e.message));
        const pn = { apiVersion: 'virtualinux.org/v1alpha1', kind: 'PhysicalNode', metadata: { name: 'x', namespace: 'default' } };
        await assert.rejects(store.create(pn), (e: Error) => e instanceof StoreError && /cluster-scoped/.test(e.message));
        const ok = await store.create<ApiObject>({ ...pn, metadata: { name: 'blade1' } });
        assert.equal((await store.get({ kind: 'PhysicalNode', name: 'blade1' })).metadata.uid, ok.metadata.uid);
      });
    });

    describe('update and updateStatus', () => {
      it('a stale resourceVersion is a ConflictError and changes nothing', async () => {
        const a = await store.create(widget('a'));
        const a2 = await store.update({ ...a, spec: { size: 2 } });
        await assert.rejects(store.update({ ...a, spec: { size: 3 } }), ConflictError);
        await assert.rejects(store.updateStatus({ ...a, status: { phase: 'X' } }), ConflictError);
        assert.deepEqual(await store.get(ref('a')), a2);
        // The refusal carries the object as stored, for the writer to compute again over.
        for (const opts of [{}, { read: [a] }]) {
          const err = await store.updateStatus({ ...a, status: { phase: 'X' } }, opts).then(() => undefined, (e: unknown) => e);
          assert.ok(err instanceof ConflictError);
          assert.deepEqual(err.current, a2);
        }
      });

      it('an update without resourceVersion is unconditional', async () => {
        const a = await store.create(widget('a'));
        await store.update({ ...a, spec: { size: 2 } });
        const w = widget('a', 'default', 7);
        const u = await store.update(w);
        assert.deepEqual(u.spec, { size: 7 });
        assert.equal(u.metadata.uid, a.metadata.uid);
      });

      it('update of a missing object is NotFoundError', async () => {
        await assert.rejects(store.update(widget('ghost')), NotFoundError);
        await assert.rejects(store.updateStatus(widget('ghost')), NotFoundError);
      });

      it('generation increases on spec changes only', async () => {
        const a = await store.create(widget('a'));
        const labelled = await store.update({ ...a, metadata: { ...a.metadata, labels: { x: 'y' } } });
        assert.equal(labelled.metadata.generation, 1, 'a label change is not a spec change');
        assert.deepEqual(labelled.metadata.labels, { x: 'y' });
        const specced = await store.update({ ...labelled, spec: { size: 2 } });
        assert.equal(specced.metadata.generation, 2);
        const again = await store.update({ ...specced, spec: { size: 3, color: 'red' } });
        assert.equal(again.metadata.generation, 3);
      });

      it('update keeps the stored status, uid and creationTimestamp', async () => {
        const a = await store.create(widget('a'));
        const s = await store.updateStatus({ ...a, status: { phase: 'Ready' } });
        const u = await store.update({
          ...s,
          metadata: { ...s.metadata, uid: 'forged', creationTimestamp: '2000-01-01T00:00:00Z' },
          spec: { size: 9 },
          status: { phase: 'Forged' },
        });
        assert.deepEqual(u.status, { phase: 'Ready' });
        assert.equal(u.metadata.uid, a.metadata.uid);
        assert.equal(u.metadata.creationTimestamp, a.metadata.creationTimestamp);
        assert.deepEqual(await store.get(ref('a')), u);
      });

      it('updateStatus writes status only and never bumps generation', async () => {
        const a = await store.create({ ...widget('a'), metadata: { ...widget('a').metadata, labels: { k: 'v' } } });
        const s = await store.updateStatus({ ...a, metadata: { ...a.metadata, labels: { k: 'changed' } }, spec: { size: 42 }, status: { phase: 'Ready', ready: true } });
        assert.deepEqual(s.status, { phase: 'Ready', ready: true });
        assert.deepEqual(s.spec, { size: 1 }, 'spec is not written by updateStatus');
        assert.deepEqual(s.metadata.labels, { k: 'v' }, 'metadata is not written by updateStatus');
        assert.equal(s.metadata.generation, 1);
        assert.ok(Number(s.metadata.resourceVersion) > Number(a.metadata.resourceVersion));
        assert.deepEqual(await store.get(ref('a')), s);
      });

      it('a write given the object as read (WriteOptions.read) is that write; over a stale or deleted copy it changes nothing', async () => {
        const a = await store.create({ ...widget('a'), metadata: { ...widget('a').metadata, labels: { k: 'v' } } });
        const s = await store.updateStatus({ ...a, status: { phase: 'Ready' } }, { read: [a] });
        assert.deepEqual(s.status, { phase: 'Ready' });
        assert.deepEqual(s.spec, a.spec);
        assert.deepEqual(s.metadata.labels, { k: 'v' });
        assert.equal(s.metadata.generation, 1);
        assert.ok(Number(s.metadata.resourceVersion) > Number(a.metadata.resourceVersion));
        assert.deepEqual(await store.get(ref('a')), s);
        // The copy read before that write is stale: refused, whatever the backend assumed of it.
        const before = await store.revision();
        await assert.rejects(store.updateStatus({ ...a, status: { phase: 'Stale' } }, { read: [a] }), ConflictError);
        await assert.rejects(store.update({ ...a, spec: { size: 5 } }, { read: [a] }), ConflictError);
        await assert.rejects(store.delete(ref('a'), { resourceVersion: a.metadata.resourceVersion, read: [a] }), ConflictError);
        assert.equal(await store.revision(), before);
        assert.deepEqual(await store.get(ref('a')), s);
        // An update over the current copy keeps the stored status and counts the spec change.
        const u = await store.update({ ...s, metadata: { ...s.metadata, finalizers: ['x/f'] }, spec: { size: 2 } }, { read: [s] });
        assert.deepEqual(u.status, { phase: 'Ready' });
        assert.deepEqual(u.metadata.finalizers, ['x/f']);
        assert.equal(u.metadata.generation, 2);
        assert.deepEqual(await store.get(ref('a')), u);
        // An unconditional update over a stale copy is planned again over the stored object: the
        // stale copy's status and generation do not come back.
        const w = await store.update({ ...u, metadata: { ...u.metadata, resourceVersion: undefined, labels: { k: 'w' } } }, { read: [a] });
        assert.deepEqual(w.status, { phase: 'Ready' });
        assert.equal(w.metadata.generation, 2);
        assert.deepEqual(w.metadata.labels, { k: 'w' });
        assert.deepEqual(await store.get(ref('a')), w);
        // A delete over the current copy with a finalizer marks it; with none left it goes.
        const marked = await store.delete(ref('a'), { resourceVersion: w.metadata.resourceVersion, read: [w] });
        assert.ok(marked.metadata.deletionTimestamp);
        await store.update({ ...marked, metadata: { ...marked.metadata, finalizers: [] } }, { read: [marked] });
        await assert.rejects(store.get(ref('a')), NotFoundError);
        // A batch over copies as read: all written at one revision, or (one copy stale) none.
        const b = await store.create(widget('b'));
        const c = await store.create(widget('c'));
        const [b2, c2] = await store.batch([
          { op: 'updateStatus', object: { ...b, status: { phase: 'B' } } },
          { op: 'updateStatus', object: { ...c, status: { phase: 'C' } } },
        ], { read: [c, b] });
        assert.equal(b2.metadata.resourceVersion, c2.metadata.resourceVersion);
        assert.deepEqual([(await store.get(ref('b'))).status, (await store.get(ref('c'))).status], [{ phase: 'B' }, { phase: 'C' }]);
        const atBatch = await store.revision();
        await assert.rejects(store.batch([
          { op: 'updateStatus', object: { ...b2, status: { phase: 'B2' } } },
          { op: 'updateStatus', object: { ...c, status: { phase: 'C2' } } },
        ], { read: [b2, c] }), ConflictError);
        assert.equal(await store.revision(), atBatch);
        assert.deepEqual(await store.get(ref('b')), b2);
        // Deleted, and made again under the same name: the old copies write nothing.
        await assert.rejects(store.updateStatus({ ...w, status: { phase: 'Gone' } }, { read: [w] }), NotFoundError);
        const again = await store.create(widget('a'));
        await assert.rejects(store.updateStatus({ ...w, status: { phase: 'Old' } }, { read: [w] }), ConflictError);
        assert.deepEqual(await store.get(ref('a')), again);
      });
    });

    describe('delete and finalizers', () => {
      it('delete without finalizers removes the object and returns its last state', async () => {
        const a = await store.create(widget('a'));
        const d = await store.delete(ref('a'));
        assert.deepEqual(d.spec, a.spec);
        assert.equal(d.metadata.uid, a.metadata.uid);
        assert.equal(await store.tryGet(ref('a')), undefined);
        await assert.rejects(store.delete(ref('a')), NotFoundError);
      });

      it('delete with a stale resourceVersion is a ConflictError', async () => {
        const a = await store.create(widget('a'));
        await store.update({ ...a, spec: { size: 5 } });
        await assert.rejects(store.delete(ref('a'), { resourceVersion: a.metadata.resourceVersion }), ConflictError);
        assert.ok(await store.tryGet(ref('a')));
      });

      it('with finalizers delete only sets deletionTimestamp (once); removing the last finalizer deletes', async () => {
        const w = widget('a');
        w.metadata.finalizers = ['test/one', 'test/two'];
        const events = watch('Widget', (await store.revision()) + 1);
        await store.create(w);
        const d1 = await store.delete(ref('a'));
        assert.match(d1.metadata.deletionTimestamp ?? '', /^\d{4}-.*Z$/);
        const stored = await store.get(ref('a'));
        assert.equal(stored.metadata.deletionTimestamp, d1.metadata.deletionTimestamp);
        await new Promise((r) => setTimeout(r, 1100));
        const d2 = await store.delete(ref('a'));
        assert.equal(d2.metadata.deletionTimestamp, d1.metadata.deletionTimestamp, 'set once');
        await assert.rejects(store.create(widget('a')), AlreadyExistsError, 'a terminating object still exists');
        // An update may not clear deletionTimestamp.
        const one = await store.update({ ...stored, metadata: { ...stored.metadata, finalizers: ['test/two'], deletionTimestamp: undefined } });
        assert.equal(one.metadata.deletionTimestamp, d1.metadata.deletionTimestamp);
        assert.deepEqual(one.metadata.finalizers, ['test/two']);
        const last = await store.update({ ...one, metadata: { ...one.metadata, finalizers: [] } });
        assert.equal(await store.tryGet(ref('a')), undefined, 'removing the last finalizer deleted the object');
        assert.deepEqual(last.metadata.finalizers, []);
        await waitFor('the DELETED event', () => events.events.some((e) => e.type === 'DELETED'));
        assert.deepEqual(events.events.map((e) => e.type), ['ADDED', 'MODIFIED', 'MODIFIED', 'DELETED']);
        const deleted = events.events[3];
        assert.equal(last.metadata.resourceVersion, String(deleted.revision));
        assert.deepEqual(deleted.object, { ...one, metadata: { ...one.metadata, resourceVersion: String(deleted.revision) } },
          'DELETED carries the last stored state at the deletion revision');
      });
    });

    describe('list', () => {
      it('lists a kind in one namespace or all, at a revision', async () => {
        await store.create(widget('a', 'ns1'));
        await store.create(widget('b', 'ns1'));
        const c = await store.create(widget('c', 'ns2'));
        await store.create({ ...widget('a', 'ns1'), kind: 'Gadget' });
        const all = await store.list('Widget');
        assert.deepEqual(all.items.map((o) => `${o.metadata.namespace}/${o.metadata.name}`).sort(), ['ns1/a', 'ns1/b', 'ns2/c']);
        assert.ok(all.revision >= Number(c.metadata.resourceVersion));
        for (const o of all.items) assert.ok(Number(o.metadata.resourceVersion) > 0);
        const ns1 = await store.list('Widget', { namespace: 'ns1' });
        assert.deepEqual(ns1.items.map((o) => o.metadata.name).sort(), ['a', 'b']);
        assert.deepEqual((await store.list('Widget', { namespace: 'ns3' })).items, []);
        assert.deepEqual((await store.list('Gadget')).items.map((o) => o.metadata.name), ['a']);
      });

      it('lists cluster-scoped objects', async () => {
        await store.create(widget('x', null));
        await store.create(widget('y', null));
        const l = await store.list('Widget');
        assert.deepEqual(l.items.map((o) => o.metadata.name).sort(), ['x', 'y']);
        assert.equal((await store.get(ref('x', null))).metadata.namespace, undefined);
      });

      it('filters by label selector', async () => {
        await store.create(widget('a', 'default', 1, { tier: 'web', env: 'prod' }));
        await store.create(widget('b', 'default', 1, { tier: 'db', env: 'prod' }));
        await store.create(widget('c', 'default', 1, { tier: 'web' }));
        await store.create(widget('d', 'default', 1));
        const names = async (sel: string) =>
          (await store.list('Widget', { labelSelector: sel })).items.map((o) => o.metadata.name).sort();
        assert.deepEqual(await names('tier=web'), ['a', 'c']);
        assert.deepEqual(await names('tier==web,env=prod'), ['a']);
        assert.deepEqual(await names('tier!=web'), ['b', 'd']);
        assert.deepEqual(await names('tier in (web, db)'), ['a', 'b', 'c']);
        assert.deepEqual(await names('tier notin (web)'), ['b', 'd']);
        assert.deepEqual(await names('env'), ['a', 'b']);
        assert.deepEqual(await names('!env'), ['c', 'd']);
        assert.deepEqual(await names(''), ['a', 'b', 'c', 'd']);
        await assert.rejects(store.list('Widget', { labelSelector: 'tier in web' }), /invalid label selector "tier in web"/);
      });
    });

    describe('watch', () => {
      it('delivers every change after a revision in order: ADDED, MODIFIED, DELETED', async () => {
        const start = await store.list('Widget');
        const w = watch('Widget', start.revision + 1);
        const a = await store.create(widget('a'));
        const a2 = await store.update({ ...a, spec: { size: 2 } });
        const a3 = await store.updateStatus({ ...a2, status: { phase: 'Ready' } });
        await store.create({ ...widget('a'), kind: 'Gadget' });
        const d = await store.delete(ref('a'));
        await waitFor('4 events', () => w.events.length >= 4);
        await new Promise((r) => setTimeout(r, 100));
        assert.deepEqual(w.events.map((e) => e.type), ['ADDED', 'MODIFIED', 'MODIFIED', 'DELETED']);
        assert.deepEqual(w.events[0].object, a);
        assert.deepEqual(w.events[1].object, a2);
        assert.deepEqual(w.events[2].object, a3);
        assert.equal(w.events[3].object.metadata.uid, a.metadata.uid);
        assert.deepEqual(w.events[3].object.status, { phase: 'Ready' }, 'DELETED carries the last state');
        assert.equal(w.events[3].object.metadata.resourceVersion, String(w.events[3].revision));
        assert.equal(d.metadata.resourceVersion, String(w.events[3].revision));
        for (const e of w.events) assert.equal(e.object.metadata.resourceVersion, String(e.revision));
        const revs = w.events.map((e) => e.revision);
        assert.deepEqual([...revs].sort((x, y) => x - y), revs);
        assert.deepEqual(w.errors, []);
      });

      it('replays history from an earlier revision and filters by namespace', async () => {
        const a = await store.create(widget('a', 'ns1'));
        await store.create(widget('b', 'ns2'));
        const a2 = await store.update({ ...a, spec: { size: 3 } });
        const w = watch('Widget', Number(a.metadata.resourceVersion), 'ns1');
        const all = watch('Widget', Number(a.metadata.resourceVersion) + 1);
        await waitFor('2 ns1 events', () => w.events.length >= 2);
        await waitFor('2 events after a', () => all.events.length >= 2);
        assert.deepEqual(w.events.map((e) => [e.type, e.object.metadata.name, e.revision]), [
          ['ADDED', 'a', Number(a.metadata.resourceVersion)],
          ['MODIFIED', 'a', Number(a2.metadata.resourceVersion)],
        ]);
        assert.deepEqual(all.events.map((e) => `${e.type} ${e.object.metadata.namespace}/${e.object.metadata.name}`),
          ['ADDED ns2/b', 'MODIFIED ns1/a']);
      });

      it('a batch is delivered as events of one revision, in operation order', async () => {
        const w = watch('Widget', (await store.revision()) + 1);
        const out = await store.batch([
          { op: 'create', object: widget('x') },
          { op: 'create', object: widget('y') },
          { op: 'create', object: widget('z') },
        ]);
        await waitFor('3 events', () => w.events.length >= 3);
        assert.deepEqual(w.events.map((e) => e.object.metadata.name), ['x', 'y', 'z']);
        assert.equal(new Set(w.events.map((e) => e.revision)).size, 1);
        assert.equal(String(w.events[0].revision), out[0].metadata.resourceVersion);
      });

      it('close stops delivery', async () => {
        const w = watch('Widget', (await store.revision()) + 1);
        await store.create(widget('a'));
        await waitFor('1 event', () => w.events.length === 1);
        w.watch.close();
        w.watch.close();
        await store.create(widget('b'));
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(w.events.length, 1);
        assert.deepEqual(w.errors, []);
      });

      it('a compacted revision fails with CompactedError; watching from the list revision works', async () => {
        const a = await store.create(widget('a'));
        for (let i = 2; i <= 5; i++) await store.update({ ...widget('a', 'default', i) });
        const head = await store.revision();
        await fx.compact(head);
        const w = watch('Widget', Number(a.metadata.resourceVersion));
        await waitFor('an error', () => w.errors.length > 0);
        assert.ok(w.errors[0] instanceof CompactedError, `got ${w.errors[0]}`);
        assert.deepEqual(w.events, []);
        const l = await store.list('Widget');
        const w2 = watch('Widget', l.revision + 1);
        await store.update(widget('a', 'default', 99));
        await waitFor('an event', () => w2.events.length === 1);
        assert.deepEqual(w2.events[0].object.spec, { size: 99 });
        assert.deepEqual(w2.errors, []);
      });
    });

    describe('batch', () => {
      it('writes all operations at one revision', async () => {
        const a = await store.create(widget('a'));
        const b = await store.create({ ...widget('b'), metadata: { ...widget('b').metadata, finalizers: ['f'] } });
        const c = await store.create(widget('c'));
        const before = await store.revision();
        const out = await store.batch([
          { op: 'create', object: widget('n') },
          { op: 'update', object: { ...a, spec: { size: 10 } } },
          { op: 'updateStatus', object: { ...c, status: { phase: 'Done' } } },
          { op: 'delete', ref: ref('b') },
        ]);
        const rev = await store.revision();
        assert.equal(rev, before + 1, 'a batch advances the revision once');
        assert.deepEqual(out.map((o) => o.metadata.resourceVersion), [String(rev), String(rev), String(rev), String(rev)]);
        assert.equal((await store.get(ref('a'))).metadata.generation, 2);
        assert.deepEqual((await store.get(ref('c'))).status, { phase: 'Done' });
        assert.ok((await store.get(ref('b'))).metadata.deletionTimestamp);
        assert.equal(out[3].metadata.uid, b.metadata.uid);
        assert.ok(await store.get(ref('n')));
      });

      it('one failing operation means nothing is written', async () => {
        const a = await store.create(widget('a'));
        const a2 = await store.update({ ...a, spec: { size: 2 } });
        const before = await store.revision();
        const cases: [string, Parameters<Store['batch']>[0], new (...a: never[]) => Error][] = [
          ['stale update', [{ op: 'create', object: widget('x') }, { op: 'update', object: { ...a, spec: { size: 5 } } }], ConflictError],
          ['existing create', [{ op: 'create', object: widget('y') }, { op: 'create', object: widget('a') }], AlreadyExistsError],
          ['missing delete', [{ op: 'create', object: widget('z') }, { op: 'delete', ref: ref('ghost') }], NotFoundError],
          ['missing status', [{ op: 'update', object: { ...a2, spec: { size: 7 } } }, { op: 'updateStatus', object: widget('ghost') }], NotFoundError],
          // Several failing operations: the first one in batch order is the one reported.
          ['existing create before a missing update', [{ op: 'create', object: widget('a') }, { op: 'update', object: widget('ghost') }], AlreadyExistsError],
          ['missing update before an existing create', [{ op: 'update', object: widget('ghost') }, { op: 'create', object: widget('a') }], NotFoundError],
        ];
        for (const [what, ops, type] of cases) {
          await assert.rejects(store.batch(ops), type, what);
        }
        assert.equal(await store.revision(), before);
        assert.deepEqual((await store.list('Widget')).items, [a2]);
      });

      it('rejects a batch that touches one object twice', async () => {
        await assert.rejects(
          store.batch([{ op: 'create', object: widget('a') }, { op: 'update', object: widget('a') }]),
          /appears twice/,
        );
        assert.equal(await store.tryGet(ref('a')), undefined);
      });
    });

    describe('leases and fences', () => {
      it('putIfAbsent binds a key to a lease; getRaw reads it; revoke frees it', async () => {
        const l1 = await store.leases.grant(30);
        const l2 = await store.leases.grant(30);
        const rev = await store.leases.putIfAbsent('leader/x', 'me', l1);
        assert.equal(typeof rev, 'number');
        assert.equal(rev, await store.revision(), 'the createRevision is a store revision');
        assert.equal(await store.leases.putIfAbsent('leader/x', 'you', l2), undefined);
        assert.equal(await store.leases.putIfAbsent('leader/x', 'me again', l1), undefined);
        assert.deepEqual(await store.leases.getRaw('leader/x'), { value: 'me', createRevision: rev });
        assert.equal(await store.leases.getRaw('leader/y'), undefined);
        await store.leases.revoke(l1);
        await store.leases.revoke(l1);
        assert.equal(await store.leases.getRaw('leader/x'), undefined);
        const rev2 = await store.leases.putIfAbsent('leader/x', 'you', l2);
        assert.ok(rev2 !== undefined && rev2 > rev!);
        assert.deepEqual(await store.leases.getRaw('leader/x'), { value: 'you', createRevision: rev2 });
        await assert.rejects(store.leases.keepAlive(l1), NotFoundError);
      });

      it('an expired lease frees its key and cannot be kept alive', async function () {
        const l = await store.leases.grant(1);
        await store.leases.putIfAbsent('leader/e', 'me', l);
        await store.leases.keepAlive(l);
        let fired = 0;
        const w = store.leases.watchRaw('leader/e', () => fired++);
        closers.push(() => w.close());
        await waitFor('the key to expire', async () => (await store.leases.getRaw('leader/e')) === undefined, 15_000);
        await waitFor('watchRaw to fire', () => fired === 1);
        await assert.rejects(store.leases.keepAlive(l), NotFoundError);
        const l2 = await store.leases.grant(30);
        assert.equal(typeof (await store.leases.putIfAbsent('leader/e', 'next', l2)), 'number');
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(fired, 1, 'watchRaw calls back once');
      });

      it('keepAlive keeps a lease beyond its TTL', async function () {
        const l = await store.leases.grant(2);
        await store.leases.putIfAbsent('leader/k', 'me', l);
        const end = Date.now() + 4500;
        while (Date.now() < end) {
          await store.leases.keepAlive(l);
          await new Promise((r) => setTimeout(r, 500));
        }
        assert.equal((await store.leases.getRaw('leader/k'))?.value, 'me');
      });

      it('watchRaw fires when the key is deleted', async () => {
        const l = await store.leases.grant(30);
        await store.leases.putIfAbsent('leader/w', 'me', l);
        let fired = 0;
        const w = store.leases.watchRaw('leader/w', () => fired++);
        closers.push(() => w.close());
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(fired, 0);
        await store.leases.revoke(l);
        await waitFor('watchRaw to fire', () => fired === 1);
      });

      it('a write with a stale fence fails with FencedError and changes nothing', async () => {
        const l = await store.leases.grant(30);
        const rev = (await store.leases.putIfAbsent('leader/f', 'me', l))!;
        const fence = { key: 'leader/f', createRevision: rev };
        const a = await store.create(widget('a'), { fence });
        const a2 = await store.update({ ...a, spec: { size: 2 } }, { fence });
        await store.updateStatus({ ...a2, status: { phase: 'Led' } }, { fence });
        // Leadership lost, and someone else took the key.
        await store.leases.revoke(l);
        const other = await store.leases.grant(30);
        await store.leases.putIfAbsent('leader/f', 'other', other);
        const before = await store.revision();
        const snapshot = await store.get(ref('a'));
        await assert.rejects(store.create(widget('b'), { fence }), FencedError);
        await assert.rejects(store.update({ ...snapshot, spec: { size: 3 } }, { fence }), FencedError);
        await assert.rejects(store.updateStatus({ ...snapshot, status: { phase: 'X' } }, { fence }), FencedError);
        await assert.rejects(store.updateStatus({ ...snapshot, status: { phase: 'X' } }, { fence, read: [snapshot] }), FencedError);
        await assert.rejects(store.delete(ref('a'), { fence }), FencedError);
        await assert.rejects(store.batch([{ op: 'create', object: widget('c') }], { fence }), FencedError);
        await assert.rejects(store.create(widget('d'), { fence: { key: 'leader/none', createRevision: rev } }), FencedError);
        assert.equal(await store.revision(), before);
        assert.deepEqual(await store.get(ref('a')), snapshot);
        assert.deepEqual((await store.list('Widget')).items.map((o) => o.metadata.name), ['a']);
      });
    });
  });
}
