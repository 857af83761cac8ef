// api/apply against the real embedded store (SQLite in a temporary file): the three-way merge,
// created/configured/unchanged, batched and sequential writes, dry runs and pruning.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applyObjects, LAST_APPLIED_ANNOTATION, planApply, pruneObjects, threeWayMerge,
} from '../../api/apply/index.js';
import { loadManifestText } from '../../api/input/index.js';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import { ConflictError } from '../../api/store/types.js';
import type { ApiObject, VirtualCluster } from '../../api/types.js';

function vc(name: string, spec: Record<string, unknown> = {}, labels?: Record<string, string>): ApiObject {
  return {
    apiVersion: 'virtualinux.org/v1alpha1',
    kind: 'VirtualCluster',
    metadata: { name, namespace: 'default', ...(labels ? { labels } : {}) },
    spec: { nodes: 2, template: 'busybox', ...spec },
  };
}

describe('api/apply: three-way merge (pure)', () => {
  it('sets manifest fields, removes fields dropped since the last apply, keeps the rest', () => {
    const last = { spec: { a: 1, b: 2, m: { x: 1, y: 2 } } };
    const desired = { spec: { a: 10, m: { x: 1 } } };
    const live = { spec: { a: 1, b: 2, c: 3, m: { x: 1, y: 2, z: 3 } }, status: { s: 1 } };
    assert.deepEqual(threeWayMerge(last, desired, live), { spec: { a: 10, c: 3, m: { x: 1, z: 3 } }, status: { s: 1 } });
  });

  it('replaces lists whole and keeps everything of the live object without a last-applied record', () => {
    assert.deepEqual(threeWayMerge(undefined, { l: [3], k: 1 }, { l: [1, 2], j: 2 }), { l: [3], k: 1, j: 2 });
  });
});

describe('api/apply: a create from the manifest as validated (planApply\'s defaulted)', () => {
  it('plans the same object as from the manifest alone, for manifests with defaults, status, server metadata and apply annotations', () => {
    const manifests = loadManifestText('m.yaml', [
      'apiVersion: virtualinux.org/v1alpha1\nkind: VirtualCluster\nmetadata:\n  name: a\nspec:\n  nodes: 2\n  template: busybox\n',
      [
        'apiVersion: virtualinux.org/v1alpha1', 'kind: VirtualCluster', 'metadata:', '  name: b', '  namespace: team', '  uid: u-1',
        '  resourceVersion: "7"', '  generation: 3', '  labels:', '    app: x', '  annotations:', '    note: hi',
        `    ${LAST_APPLIED_ANNOTATION}: '{"old":1}'`, '    virtualinux.org/applied-by: someone',
        'spec:', '  nodes: 3', '  template: busybox', '  node:', '    vcpus: 2', '  placement:', '    strategy: Block',
        'status:', '  phase: Running', '',
      ].join('\n'),
      `apiVersion: virtualinux.org/v1alpha1\nkind: VirtualCluster\nmetadata:\n  name: c\n  annotations:\n    ${LAST_APPLIED_ANNOTATION}: x\nspec:\n  nodes: 1\n  template: busybox\n`,
    ].join('---\n'));
    assert.equal(manifests.length, 3);
    for (const m of manifests) {
      const before = JSON.stringify([m.object, m.defaulted]);
      for (const fieldManager of [undefined, 'vcctl']) {
        const alone = planApply(m.object, undefined, { fieldManager });
        const validated = planApply(m.object, undefined, { fieldManager, defaulted: m.defaulted });
        assert.equal(validated.action, 'created');
        assert.equal(JSON.stringify(validated.object), JSON.stringify(alone.object), m.object.metadata.name); // same keys, same order
        assert.deepEqual(validated.patch, alone.patch);
      }
      assert.equal(JSON.stringify([m.object, m.defaulted]), before, 'the manifest and its defaulted copy are not changed');
    }
  });

  it('applyObjects with defaulted stores what it stores without (and a field manager too long for an annotation still fails)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vl-apply-defaulted-'));
    const store = new SqliteStore(join(dir, 'store.db'));
    try {
      const manifests = loadManifestText('m.yaml', 'apiVersion: virtualinux.org/v1alpha1\nkind: VirtualCluster\nmetadata:\n  name: d\nspec:\n  nodes: 2\n  template: busybox\n');
      const [withD] = await applyObjects(store, manifests.map((m) => ({ ...m.object, metadata: { ...m.object.metadata, name: 'd1' } })), {
        fieldManager: 'vcctl', defaulted: manifests.map((m) => ({ ...m.defaulted, metadata: { ...m.defaulted.metadata, name: 'd1' } })),
      });
      const [without] = await applyObjects(store, manifests.map((m) => ({ ...m.object, metadata: { ...m.object.metadata, name: 'd2' } })), { fieldManager: 'vcctl' });
      const strip = (o: ApiObject) => {
        const { uid: _u, creationTimestamp: _c, resourceVersion: _r, name: _n, ...meta } = o.metadata;
        return JSON.stringify({ ...o, metadata: meta });
      };
      assert.equal(strip(withD.object).replace('\\"d1\\"', '\\"d2\\"'), strip(without.object)); // the names differ in the last-applied record only
      await assert.rejects(
        applyObjects(store, manifests.map((m) => m.object), { fieldManager: 'x'.repeat(262145), defaulted: manifests.map((m) => m.defaulted) }),
        /the merged object is invalid: metadata\.annotations/,
      );
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('api/apply: applyObjects on the embedded store', () => {
  let dir: string;
  let store: SqliteStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vl-apply-'));
    store = new SqliteStore(join(dir, 'store.db'));
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const actions = (rs: { action: string }[]) => rs.map((r) => r.action);

  it('creates, then reports unchanged, then configured', async () => {
    assert.deepEqual(actions(await applyObjects(store, [vc('a'), vc('b')])), ['created', 'created']);
    assert.deepEqual(actions(await applyObjects(store, [vc('a'), vc('b')])), ['unchanged', 'unchanged']);
    const rs = await applyObjects(store, [vc('a', { nodes: 3 }), vc('b')]);
    assert.deepEqual(actions(rs), ['configured', 'unchanged']);
    const a = await store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'default', name: 'a' });
    assert.equal(a.spec?.nodes, 3);
    assert.equal(a.metadata.generation, 2);
    assert.equal(a.spec?.placement.strategy, 'Block', 'defaults are stored');
    assert.deepEqual(JSON.parse(a.metadata.annotations?.[LAST_APPLIED_ANNOTATION] ?? ''), {
      apiVersion: 'virtualinux.org/v1alpha1', kind: 'VirtualCluster',
      metadata: { name: 'a', namespace: 'default' }, spec: { nodes: 3, template: 'busybox' },
    });
  });

  it('removes a field dropped from the manifest but keeps status and a label added by hand', async () => {
    await applyObjects(store, [vc('a', { storageDriver: 'btrfs', placement: { strategy: 'Cyclic' } }, { app: 'x' })]);
    const ref = { kind: 'VirtualCluster', namespace: 'default', name: 'a' };
    const live = await store.get<VirtualCluster>(ref);
    await store.updateStatus({ ...live, status: { phase: 'Running' } });
    const again = await store.get<VirtualCluster>(ref);
    await store.update({ ...again, metadata: { ...again.metadata, labels: { ...again.metadata.labels, owner: 'ops' } } });

    const [r] = await applyObjects(store, [vc('a', { placement: { mode: 'Lazy' } }, { app: 'x' })]);
    assert.equal(r.action, 'configured');
    const after = await store.get<VirtualCluster>(ref);
    assert.equal(after.spec?.storageDriver, undefined, 'dropped from the manifest: removed');
    assert.deepEqual(after.spec?.placement, { strategy: 'Block', mode: 'Lazy' }, 'dropped strategy falls back to its default');
    assert.deepEqual(after.metadata.labels, { app: 'x', owner: 'ops' }, 'the hand-added label stays');
    assert.deepEqual(after.status, { phase: 'Running' }, 'status written by a controller stays');
  });

  it('writes a batched apply in one store revision, and sequential apply one revision per object', async () => {
    const before = await store.revision();
    const batched = await applyObjects(store, [vc('a'), vc('b'), vc('c')]);
    assert.deepEqual(new Set(batched.map((r) => r.object.metadata.resourceVersion)), new Set([String(before + 1)]));
    const seq = await applyObjects(store, [vc('d'), vc('e')], { batch: false });
    assert.deepEqual(seq.map((r) => r.object.metadata.resourceVersion), [String(before + 2), String(before + 3)]);
    const many = Array.from({ length: 250 }, (_v, i) => vc(`n${i}`));
    const rs = await applyObjects(store, many, { batchSize: 100 });
    assert.deepEqual(new Set(rs.map((r) => r.action)), new Set(['created']));
    assert.equal((await store.list('VirtualCluster')).items.length, 255);
  });

  it('pipelines batches; a batch that fails for good stops the apply: the batches before it are stored, it and those after the ones in flight are not', async () => {
    const names = (rs: ApiObject[]) => new Set(rs.map((o) => o.metadata.name));
    // All in: 95 objects in batches of 10, 4 in flight.
    const rs = await applyObjects(store, Array.from({ length: 95 }, (_v, i) => vc(`p${i}`)), { batchSize: 10, pipeline: 4 });
    assert.equal(rs.length, 95);
    assert.ok(rs.every((r, i) => r.action === 'created' && r.object.metadata.name === `p${i}`), 'results in input order');
    assert.equal((await store.list('VirtualCluster')).items.length, 95);
    // vc f25 (batch 2) demands a resourceVersion the store does not have: a Conflict, not retried.
    await applyObjects(store, [vc('f25')]);
    for (const pipeline of [1, 4]) {
      const objs = Array.from({ length: 100 }, (_v, i) => vc(`f${i}-${pipeline}`));
      objs[25] = vc('f25', { nodes: 3 });
      objs[25].metadata.resourceVersion = '1';
      await assert.rejects(applyObjects(store, objs, { batchSize: 10, pipeline }), (err: Error) => {
        assert.ok(err instanceof ConflictError, String(err));
        assert.match(err.message, /f25/);
        return true;
      });
      const stored = names((await store.list('VirtualCluster')).items);
      const batch = (k: number) => objs.slice(k * 10, k * 10 + 10).map((o) => o.metadata.name).filter((n) => n !== 'f25');
      for (const k of [0, 1]) assert.ok(batch(k).every((n) => stored.has(n)), `batch ${k} stored (pipeline ${pipeline})`);
      assert.ok(batch(2).every((n) => !stored.has(n)), `the failed batch is not stored at all (pipeline ${pipeline})`);
      // After the failure no batch starts: batches 0 to pipeline-1 start together, and each other
      // worker may have taken one more before the failure was known.
      const last = Math.max(2, 2 * (pipeline - 1));
      for (let k = last + 1; k < 10; k++) assert.ok(batch(k).every((n) => !stored.has(n)), `batch ${k} not written (pipeline ${pipeline})`);
      for (let k = 3; k <= last; k++) {
        const inStore = batch(k).filter((n) => stored.has(n)).length;
        assert.ok(inStore === 0 || inStore === 10, `batch ${k} whole or not at all`);
      }
    }
  });

  it('dry runs write nothing; the server dry run reports a stale resourceVersion', async () => {
    await applyObjects(store, [vc('a')]);
    const rev = await store.revision();
    const client = await applyObjects(store, [vc('a', { nodes: 5 }), vc('b')], { dryRun: 'client' });
    assert.deepEqual(actions(client), ['configured', 'created']);
    assert.equal((client[0].object.spec as { nodes: number }).nodes, 5);
    const server = await applyObjects(store, [vc('a', { nodes: 5 }), vc('b')], { dryRun: 'server' });
    assert.deepEqual(actions(server), ['configured', 'created']);
    assert.equal(await store.revision(), rev, 'nothing written');
    assert.equal(await store.tryGet({ kind: 'VirtualCluster', namespace: 'default', name: 'b' }), undefined);
    const stale = vc('a', { nodes: 5 });
    stale.metadata.resourceVersion = '999';
    await assert.rejects(applyObjects(store, [stale], { dryRun: 'server' }), (err: Error) => {
      assert.ok(err instanceof ConflictError);
      assert.equal(err.message, `VirtualCluster default/a: the manifest demands resourceVersion 999 but the store has ${rev}; get the object again or drop metadata.resourceVersion`);
      return true;
    });
    await assert.rejects(applyObjects(store, [stale]), ConflictError, 'a real apply fails the same way');
  });

  it('plans against the live object: status and server metadata in a manifest are ignored', () => {
    const desired = vc('a');
    desired.status = { phase: 'Running' };
    desired.metadata.uid = 'bogus';
    const plan = planApply(desired, undefined);
    assert.equal(plan.action, 'created');
    assert.equal(plan.object.status, undefined);
    assert.equal(plan.object.metadata.uid, undefined);
  });

  it('names the user\'s annotations, or the manifest, when the last-applied record would not fit', () => {
    const annotated = vc('a');
    annotated.metadata.annotations = { 'a.example/one': 'x'.repeat(70_000), 'a.example/two': 'y'.repeat(70_000) };
    assert.throws(() => planApply(annotated, undefined), {
      name: 'ApplyError',
      message: 'VirtualCluster default/a: metadata.annotations: the annotations hold 140026 bytes together, at most 131072 (apply keeps a copy of the manifest in virtualinux.org/last-applied-configuration); keep large data elsewhere',
    });
    const labelled = vc('b', {}, Object.fromEntries(Array.from({ length: 5000 }, (_v, i) => [`l${i}`, 'v'.repeat(50)])));
    assert.throws(() => planApply(labelled, undefined), (err: Error) =>
      err.name === 'ApplyError' && /^VirtualCluster default\/b: the manifest is \d+ characters as apply records it in virtualinux.org\/last-applied-configuration, at most 262144; make it smaller$/.test(err.message));
    // Just under the cap, the record fits and the object is valid.
    annotated.metadata.annotations = { 'a.example/one': 'x'.repeat(130_000) };
    assert.equal(planApply(annotated, undefined).action, 'created');
  });

  it('prunes objects an earlier apply made that match the selector, never hand-made ones', async () => {
    await applyObjects(store, [vc('keep', {}, { set: 's' }), vc('old', {}, { set: 's' }), vc('other', {}, { set: 't' })]);
    await store.create(vc('manual', {}, { set: 's' }));
    const dry = await pruneObjects(store, { keep: [{ kind: 'VirtualCluster', namespace: 'default', name: 'keep' }], labelSelector: 'set=s', namespace: 'default', dryRun: 'client' });
    assert.deepEqual(dry.map((p) => p.ref.name), ['old']);
    assert.ok(await store.tryGet({ kind: 'VirtualCluster', namespace: 'default', name: 'old' }), 'dry run keeps it');
    const pruned = await pruneObjects(store, { keep: [{ kind: 'VirtualCluster', namespace: 'default', name: 'keep' }], labelSelector: 'set=s', namespace: 'default' });
    assert.deepEqual(pruned.map((p) => p.ref.name), ['old']);
    const left = (await store.list('VirtualCluster')).items.map((o) => o.metadata.name).sort();
    assert.deepEqual(left, ['keep', 'manual', 'other']);
  });
});
