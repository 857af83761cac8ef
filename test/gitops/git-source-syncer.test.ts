// GitSourceSyncer directly (real SqliteStore, real api/input and api/apply), for interleavings the
// CLI tests cannot arrange: a second sync of the same source running in the middle of a first.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import { apiSyncDeps } from '../../reconcilers/gitops/api-sync-deps.js';
import { GitSourceSyncer, type SyncDeps } from '../../reconcilers/gitops/git-source-syncer.js';
import type { GitSource } from '../../reconcilers/gitops/sync-status.js';
import { virtualCluster } from './sync-helpers.js';

describe('gitops GitSourceSyncer (real store)', () => {
  let root: string;
  let store: SqliteStore;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'vc-gitops-syncer-'));
    store = new SqliteStore(join(root, 'store.db'));
  });
  afterEach(async () => {
    await store.close();
    rmSync(root, { recursive: true, force: true });
  });

  function dirWith(name: string, files: Record<string, string>): string {
    const d = join(root, name);
    mkdirSync(d, { recursive: true });
    for (const [f, text] of Object.entries(files)) writeFileSync(join(d, f), text);
    return d;
  }

  function syncer(dir: string, deps: SyncDeps = apiSyncDeps('default')): GitSourceSyncer {
    return new GitSourceSyncer(store, {
      dir, name: 'shared', nameGiven: true, namespace: 'default', prune: true, allowEmpty: false,
    }, deps);
  }

  it('keeps inventory entries another sync of the same source added meanwhile', async () => {
    const dirA = dirWith('a', { 'a.yaml': virtualCluster('a', 1) });
    const dirB = dirWith('b', { 'b.yaml': virtualCluster('b', 1) });
    const real = apiSyncDeps('default');
    const b = syncer(dirB);
    // A's read runs B's whole sync first: B writes `b` and its inventory while A is under way.
    const a = syncer(dirA, {
      readManifests: async (dir) => {
        assert.equal((await b.sync()).outcome.ok, true);
        return real.readManifests(dir);
      },
      applyObjects: real.applyObjects,
    });
    const r = await a.sync();
    assert.equal(r.outcome.ok, true);
    const gs = await store.get<GitSource>({ kind: 'GitSource', namespace: 'default', name: 'shared' });
    assert.deepEqual(gs.status?.inventory?.map((e) => e.name).sort(), ['a', 'b']);
    assert.ok(await store.tryGet({ kind: 'VirtualCluster', namespace: 'default', name: 'b' }));
  });

  it('a revision the store would refuse after the merge (dry run) writes nothing of it', async () => {
    const tmpl = (image: string) => `apiVersion: virtualinux.org/v1alpha1
kind: OSTemplate
metadata: {name: busybox}
spec:
  image: {${image}}
`;
    const dir = dirWith('c', { 'busybox.yaml': tmpl('tarball: /san/t1.tar') });
    assert.equal((await syncer(dir).sync()).outcome.ok, true);
    // Someone adds image.path by hand (not in the last-applied manifest, so the merge keeps it):
    // with the next manifest's tarball the merged image names both, which the schema's oneOf refuses.
    const live = await store.get<{ apiVersion: string; kind: string; metadata: { name: string }; spec: { image: object } }>({ kind: 'OSTemplate', name: 'busybox' });
    await store.update({ ...live, spec: { ...live.spec, image: { ...live.spec.image, path: '/san/by-hand.qcow2' } } });
    writeFileSync(join(dir, 'busybox.yaml'), tmpl('tarball: /san/t2.tar'));
    writeFileSync(join(dir, 'd.yaml'), virtualCluster('d', 1));
    const before = await store.revision();
    const r = await syncer(dir).sync();
    assert.equal(r.outcome.ok, false);
    assert.equal(!r.outcome.ok && r.outcome.reason, 'ValidationFailed');
    assert.match(!r.outcome.ok ? r.outcome.message : '', /nothing was applied: the store refused the revision: OSTemplate busybox: the merged object is invalid/);
    assert.equal(await store.tryGet({ kind: 'VirtualCluster', namespace: 'default', name: 'd' }), undefined);
    assert.equal(await store.revision(), before + 1, 'only the status was written');
  });
});
