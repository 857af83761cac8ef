// Issue 23: the gitops controller in a real ControllerManager on the embedded store, fetching a
// real bare repository over a local path with real git: a pushed commit reaches the store within
// the interval (and a deleted object comes back), a bad commit changes nothing and the status names file, line and field, a
// force-push to an older commit is applied as that commit and prunes what it lost, a tag and a
// commit id are followed, and `vcctl sync` does not take a remote source over.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getCondition } from '../../api/conditions.js';
import type { Store } from '../../api/store/types.js';
import type { VirtualCluster } from '../../api/types.js';
import { silentLogger } from '../../controllers/log.js';
import { ControllerManager } from '../../controllers/manager.js';
import { gitOpsController } from '../../reconcilers/gitops/controller.js';
import type { GitSource, GitSourceSpec } from '../../reconcilers/gitops/sync-status.js';
import { waitFor, waitForEvent } from '../controllers/helpers.js';
import { GitFixture, git } from './git-fixture.js';
import { storeSite, type StoreSite } from './store-site.js';
import { physicalNode, runVcctlInProcess, virtualCluster } from './sync-helpers.js';

const VC = (name: string) => ({ kind: 'VirtualCluster', namespace: 'default', name });
const GS = (name: string) => ({ kind: 'GitSource', namespace: 'default', name });
const INTERVAL_MS = 2000;

describe('gitops controller: GitSource from a local-path remote (real git, real manager)', function () {
  this.timeout(120_000);
  let fx: GitFixture;
  let cache: string;
  let site: StoreSite;
  let store: Store;
  let storeUrl: string;
  let manager: ControllerManager;

  // The embedded store, or with VL_E2E_STORE=etcd-cluster a 3-member etcd cluster (store-site.ts).
  before(async () => {
    site = await storeSite();
  });
  after(async () => {
    await site?.close();
  });
  beforeEach(async () => {
    fx = new GitFixture('vc-gitops-ctl-');
    cache = mkdtempSync(join(tmpdir(), 'vc-gitops-cache-'));
    ({ store, url: storeUrl } = await site.open(fx.root));
    manager = new ControllerManager({
      store, identity: 'gitops-test', leaderElection: false, log: silentLogger(),
      specs: [gitOpsController({ cacheRoot: cache })],
    });
    await manager.start();
  });
  afterEach(async () => {
    await manager.stop();
    await store.close();
    fx.cleanup();
    rmSync(cache, { recursive: true, force: true });
  });

  async function createSource(name: string, spec: Partial<GitSourceSpec> = {}): Promise<void> {
    await store.create<GitSource>({
      apiVersion: 'virtualinux.org/v1alpha1', kind: 'GitSource', metadata: { name, namespace: 'default' },
      spec: { url: fx.remote, ref: 'main', path: 'clusters', interval: `${INTERVAL_MS / 1000}s`, prune: true, ...spec },
    });
  }
  const source = (name: string) => store.get<GitSource>(GS(name));
  const appliedAs = (name: string, commit: string) => waitFor(`GitSource ${name} applied ${commit}`, async () => {
    const s = (await source(name)).status;
    return s?.lastAppliedRevision === commit && getCondition(s.conditions, 'Ready')?.status === 'True' ? s : undefined;
  }, 30_000);

  it('applies the branch, and a pushed commit reaches the store within the interval', async () => {
    const c1 = fx.pushUpstream({ 'clusters/nodes.yaml': physicalNode('blade1'), 'clusters/a.yaml': virtualCluster('a', 1), 'elsewhere/x.yaml': virtualCluster('x', 1) }, 'first');
    await createSource('main');
    const s1 = await appliedAs('main', c1);
    assert.equal(s1.fetchedRevision, c1);
    assert.equal(s1.appliedCount, 2);
    assert.deepEqual(s1.inventory, [{ kind: 'PhysicalNode', name: 'blade1' }, VC('a')]);
    assert.equal(await store.tryGet(VC('x')), undefined, 'only spec.path is applied');

    const c2 = fx.pushUpstream({ 'clusters/b.yaml': virtualCluster('b', 2) }, 'second');
    const pushed = Date.now();
    await waitFor('VirtualCluster b', () => store.tryGet(VC('b')), INTERVAL_MS + 10_000, 20);
    const took = Date.now() - pushed;
    console.log(`      commit in the store ${took} ms after the push (interval ${INTERVAL_MS} ms)`);
    // within the interval plus one fetch and sync (a few seconds on a loaded 2-core machine)
    assert.ok(took <= INTERVAL_MS + 6000, `took ${took} ms, interval ${INTERVAL_MS} ms`);
    await appliedAs('main', c2);
    await waitForEvent(store, manager, 'main', (e) => e.reason === 'Synced' && e.message.includes(c2), 'a Synced Event naming the commit');

    // Every interval re-applies the commit: what is changed by hand is put back, the rest is not written.
    const untouched = await store.get(VC('b'));
    await store.delete(VC('a'));
    await waitFor('a put back', () => store.tryGet(VC('a')), INTERVAL_MS + 10_000);
    assert.equal((await store.get(VC('b'))).metadata.resourceVersion, untouched.metadata.resourceVersion);
  });

  it('a bad commit changes nothing, and the status names file, line and field; the next good commit applies', async () => {
    const good = fx.pushUpstream({ 'clusters/a.yaml': virtualCluster('a', 1) }, 'good');
    await createSource('bad');
    await appliedAs('bad', good);
    const before = await store.get<VirtualCluster>(VC('a'));

    const bad = fx.pushUpstream({
      'clusters/a.yaml': virtualCluster('a', 3),
      'clusters/broken.yaml': virtualCluster('broken', 1).replace('strategy: Block', 'strategy: Blocky'),
    }, 'bad');
    const s = await waitFor('the bad commit refused', async () => {
      const st = (await source('bad')).status;
      return st?.fetchedRevision === bad && getCondition(st.conditions, 'Stalled')?.status === 'True' ? st : undefined;
    }, 30_000);
    assert.equal(getCondition(s.conditions, 'Ready')?.reason, 'ValidationFailed');
    assert.match(s.lastError ?? '', /clusters\/broken\.yaml: document 1 \(line 8\): spec\.placement\.strategy: must be one of Block, Cyclic/);
    assert.equal(s.lastAppliedRevision, good);
    const after = await store.get<VirtualCluster>(VC('a'));
    assert.equal(after.metadata.resourceVersion, before.metadata.resourceVersion, 'a is untouched');
    assert.equal(await store.tryGet(VC('broken')), undefined);

    const fixed = fx.pushUpstream({ 'clusters/broken.yaml': virtualCluster('broken', 1) }, 'fixed');
    await appliedAs('bad', fixed);
    assert.equal((await store.get<VirtualCluster>(VC('a'))).spec?.nodes, 3);
  });

  it('a force-push to an older commit is applied as that commit and prunes what it no longer has', async () => {
    const old = fx.pushUpstream({ 'clusters/a.yaml': virtualCluster('a', 1) }, 'old');
    const newer = fx.pushUpstream({ 'clusters/a.yaml': virtualCluster('a', 2), 'clusters/b.yaml': virtualCluster('b', 1) }, 'newer');
    await createSource('force');
    await appliedAs('force', newer);
    assert.ok(await store.tryGet(VC('b')));

    git(fx.upstream, 'push', '--quiet', '--force', 'origin', `${old}:refs/heads/main`);
    await appliedAs('force', old);
    assert.equal(await store.tryGet(VC('b')), undefined, 'b is pruned');
    assert.equal((await store.get<VirtualCluster>(VC('a'))).spec?.nodes, 1);
    assert.equal((await source('force')).status?.prunedCount, 1);
  });

  it('follows a tag and a commit id; an unknown ref is FetchFailed and applies nothing', async () => {
    const tagged = fx.pushUpstream({ 'clusters/a.yaml': virtualCluster('a', 1) }, 'tagged');
    git(fx.upstream, 'tag', 'v1');
    git(fx.upstream, 'push', '--quiet', 'origin', 'v1');
    fx.pushUpstream({ 'clusters/b.yaml': virtualCluster('b', 1) }, 'after the tag');
    await createSource('tag', { ref: 'v1' });
    await appliedAs('tag', tagged);
    assert.equal(await store.tryGet(VC('b')), undefined);

    await createSource('pinned', { ref: tagged, prune: false });
    await appliedAs('pinned', tagged);

    await createSource('nope', { ref: 'no-such-branch' });
    const s = await waitFor('FetchFailed', async () => {
      const st = (await source('nope')).status;
      return getCondition(st?.conditions, 'Ready')?.reason === 'FetchFailed' ? st : undefined;
    }, 30_000);
    assert.match(s.lastError ?? '', /spec\.ref no-such-branch is neither a branch, a tag nor a fetched commit/);
    assert.equal(getCondition(s.conditions, 'Stalled')?.status, 'False', 'retried every interval');
  });

  it('a committed link leaving spec.path is refused by name, and a spec.path that is a link out of the checkout', async () => {
    const good = fx.pushUpstream({ 'clusters/a.yaml': virtualCluster('a', 1), 'other/b.yaml': virtualCluster('b', 1) }, 'good');
    await createSource('links');
    await appliedAs('links', good);
    git(fx.upstream, 'pull', '--quiet', '--ff-only', 'origin', 'main');
    symlinkSync('../other/b.yaml', join(fx.upstream, 'clusters', 'b.yaml'));
    symlinkSync('/etc/hostname', join(fx.upstream, 'clusters', 'host.yaml'));
    symlinkSync('/etc', join(fx.upstream, 'etc-link'));
    const bad = fx.commit(fx.upstream, 'links out');
    git(fx.upstream, 'push', '--quiet', 'origin', 'main');
    const s = await waitFor('the links refused', async () => {
      const st = (await source('links')).status;
      return st?.fetchedRevision === bad && getCondition(st.conditions, 'Stalled')?.status === 'True' ? st : undefined;
    }, 30_000);
    assert.match(s.lastError ?? '', /clusters\/b\.yaml: is a symbolic link to \S*other\/b\.yaml, outside the synced directory/);
    assert.match(s.lastError ?? '', /clusters\/host\.yaml: is a symbolic link to \/etc\/hostname, outside the synced directory/);
    assert.equal(s.lastAppliedRevision, good);
    assert.equal(await store.tryGet(VC('b')), undefined);

    await createSource('pathlink', { path: 'etc-link' });
    const p = await waitFor('spec.path refused', async () => {
      const st = (await source('pathlink')).status;
      return getCondition(st?.conditions, 'Stalled')?.status === 'True' ? st : undefined;
    }, 30_000);
    assert.match(p.lastError ?? '', /spec\.path etc-link leads outside the repository/);
  });

  it('vcctl get gs shows the URL and fetched commit; vcctl sync refuses to take over a source vc-manager syncs', async () => {
    const c = fx.pushUpstream({ 'clusters/a.yaml': virtualCluster('a', 1) }, 'a');
    await createSource('remote');
    await appliedAs('remote', c);
    const env = { ...process.env, VCCTL_STORE: storeUrl };
    const get = await runVcctlInProcess(['get', 'gs', '-o', 'wide'], env);
    assert.equal(get.code, 0, get.stderr);
    assert.match(get.stdout, /^NAME\s+SOURCE\s+REVISION\s+READY\s+APPLIED\s+PRUNED\s+AGE\s+FETCHED\s+ERROR/);
    assert.match(get.stdout, new RegExp(`\\nremote\\s+\\S*remote\\.git#main\\s+${c.slice(0, 12)}\\s+True\\s+1\\s+0\\s+\\S+\\s+${c.slice(0, 12)}`));
    const r = await runVcctlInProcess(['sync', '--dir', fx.work, '--name', 'remote'], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /GitSource default\/remote is synced by vc-manager from .*remote\.git; vcctl sync does not take it over/);
    assert.equal((await source('remote')).spec?.url, fx.remote);
  });
});
