// vcctl sync against real git repositories (a work tree cloned from a local bare remote) and the
// real embedded SqliteStore in a temporary file. The one-shot syncs run the real command module
// in-process; the watch and interval tests run `vcctl sync` as a real process.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { getCondition } from '../../api/conditions.js';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import type { ApiObject, VirtualCluster } from '../../api/types.js';
import { SYNC_SOURCE_ANNOTATION } from '../../reconcilers/gitops/plan-sync.js';
import type { GitSource } from '../../reconcilers/gitops/sync-status.js';
import { GitFixture } from './git-fixture.js';
import {
  eventually, osTemplate, physicalNode, runVcctlInProcess, startVcctl, virtualCluster, type VcctlProcess,
} from './sync-helpers.js';

const VC = (name: string) => ({ kind: 'VirtualCluster', namespace: 'default', name });
const PN = (name: string) => ({ kind: 'PhysicalNode', name });
const GS = { kind: 'GitSource', namespace: 'default', name: 'work' };

describe('gitops: vcctl sync (real git, real SqliteStore)', function () {
  this.timeout(120_000);
  let fx: GitFixture;
  let store: SqliteStore;
  let env: NodeJS.ProcessEnv;
  let procs: VcctlProcess[];

  beforeEach(() => {
    fx = new GitFixture();
    const storePath = join(fx.root, 'store.db');
    store = new SqliteStore(storePath);
    env = { ...process.env, VCCTL_STORE: `file:${storePath}` };
    procs = [];
    fx.write(fx.work, 'nodes/blade1.yaml', physicalNode('blade1'));
    fx.write(fx.work, 'templates/busybox.yml', osTemplate('busybox'));
    fx.write(fx.work, 'clusters/stripes.yaml', virtualCluster('stripes', 2));
    fx.write(fx.work, 'notes.txt', 'not a manifest\n');
    fx.commit(fx.work, 'cluster');
  });
  afterEach(async () => {
    for (const p of procs) await p.stop();
    await store.close();
    fx.cleanup();
  });

  const sync = (...args: string[]) => runVcctlInProcess(['sync', '--dir', fx.work, ...args], env);
  const source = () => store.get<GitSource>(GS);

  it('applies every manifest of the first sync in dependency order and records the commit', async () => {
    const r = await sync();
    assert.equal(r.code, 0, r.stderr);
    // PhysicalNodes and OSTemplates before VirtualClusters, whatever the file order.
    const lines = r.stdout.trim().split('\n');
    assert.deepEqual(lines.slice(0, 3), [
      'physicalnode/blade1 created', 'ostemplate/busybox created', 'virtualcluster/stripes created',
    ]);
    const vc = await store.get<VirtualCluster>(VC('stripes'));
    assert.equal(vc.spec?.nodes, 2);
    assert.equal(vc.metadata.annotations?.[SYNC_SOURCE_ANNOTATION], 'default/work');
    assert.equal((await store.get(PN('blade1'))).metadata.annotations?.[SYNC_SOURCE_ANNOTATION], 'default/work');
    const gs = await source();
    assert.equal(gs.spec?.dir, fx.work);
    assert.equal(gs.status?.lastAppliedRevision, fx.head(fx.work));
    assert.equal(gs.status?.appliedCount, 3);
    assert.equal(gs.status?.prunedCount, 0);
    assert.equal(gs.status?.lastError, '');
    assert.deepEqual(gs.status?.inventory, [PN('blade1'), { kind: 'OSTemplate', name: 'busybox' }, VC('stripes')]);
    assert.equal(getCondition(gs.status?.conditions, 'Ready')?.status, 'True');
  });

  it('a modified file updates the object; an unchanged one is left alone', async () => {
    assert.equal((await sync()).code, 0);
    const before = await store.get(PN('blade1'));
    fx.write(fx.work, 'clusters/stripes.yaml', virtualCluster('stripes', 3, 'Cyclic'));
    const commit = fx.commit(fx.work, 'grow stripes');
    const r = await sync();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /virtualcluster\/stripes configured/);
    assert.match(r.stdout, /physicalnode\/blade1 unchanged/);
    const vc = await store.get<VirtualCluster>(VC('stripes'));
    assert.equal(vc.spec?.nodes, 3);
    assert.equal(vc.spec?.placement.strategy, 'Cyclic');
    assert.equal((await store.get(PN('blade1'))).metadata.resourceVersion, before.metadata.resourceVersion);
    assert.equal((await source()).status?.lastAppliedRevision, commit);
  });

  it('a removed file is pruned only with --prune', async () => {
    assert.equal((await sync()).code, 0);
    fx.remove(fx.work, 'clusters/stripes.yaml');
    fx.commit(fx.work, 'remove stripes');

    let r = await sync();
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await store.tryGet(VC('stripes')), 'kept without --prune');
    let gs = await source();
    assert.deepEqual(gs.status?.inventory?.map((e) => e.name), ['blade1', 'busybox', 'stripes']);
    assert.match(getCondition(gs.status?.conditions, 'Ready')?.message ?? '', /1 object\(s\) left the directory and were kept/);

    r = await sync('--prune');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /virtualcluster\/stripes pruned/);
    assert.equal(await store.tryGet(VC('stripes')), undefined);
    assert.ok(await store.tryGet(PN('blade1')));
    gs = await source();
    assert.equal(gs.status?.prunedCount, 1);
    assert.deepEqual(gs.status?.inventory?.map((e) => e.name), ['blade1', 'busybox']);
  });

  it('never prunes an object created by hand, even with the same labels and annotation', async () => {
    assert.equal((await sync()).code, 0);
    const stripes = await store.get<VirtualCluster>(VC('stripes'));
    const handmade: ApiObject = {
      apiVersion: stripes.apiVersion, kind: 'VirtualCluster',
      metadata: { name: 'handmade', namespace: 'default', labels: { ...stripes.metadata.labels }, annotations: { ...stripes.metadata.annotations } },
      spec: stripes.spec,
    };
    await store.create(handmade);
    fx.remove(fx.work, 'clusters/stripes.yaml');
    fx.commit(fx.work, 'remove stripes');
    const r = await sync('--prune');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await store.tryGet(VC('stripes')), undefined);
    assert.ok(await store.tryGet(VC('handmade')), 'the hand-made object is not in the inventory');
    assert.doesNotMatch(r.stdout, /handmade/);
  });

  it('a commit with one invalid file changes nothing and says why; the next good commit applies', async () => {
    assert.equal((await sync('--prune')).code, 0);
    const good = fx.head(fx.work);
    const storeRevision = await store.revision();
    // One commit: a valid change to stripes, a new valid object, a removal and one invalid file.
    fx.write(fx.work, 'clusters/stripes.yaml', virtualCluster('stripes', 5));
    fx.write(fx.work, 'nodes/blade2.yaml', physicalNode('blade2'));
    fx.remove(fx.work, 'templates/busybox.yml');
    fx.write(fx.work, 'clusters/broken.yaml', virtualCluster('broken', 1, 'Diagonal'));
    const bad = fx.commit(fx.work, 'broken');

    const r = await sync('--prune');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ValidationFailed/);
    assert.match(r.stderr, /clusters\/broken\.yaml: document 1 \(line 8\): spec\.placement\.strategy: must be one of Block, Cyclic/);
    assert.equal(r.stdout, '');
    assert.equal((await store.get<VirtualCluster>(VC('stripes'))).spec?.nodes, 2);
    assert.equal(await store.tryGet(PN('blade2')), undefined);
    assert.ok(await store.tryGet({ kind: 'OSTemplate', name: 'busybox' }));
    let gs = await source();
    // The only writes of the refused sync are the GitSource's status and a Warning Event.
    assert.equal(await store.revision(), storeRevision + 2);
    const { items: events } = await store.list<ApiObject<{ reason: string; type: string }>>('Event', { namespace: 'default' });
    assert.deepEqual(events.filter((e) => e.spec?.type === 'Warning').map((e) => e.spec?.reason), ['ValidationFailed']);
    assert.equal(gs.status?.lastAppliedRevision, good);
    assert.match(gs.status?.lastError ?? '', new RegExp(`^revision ${bad}: .*broken\\.yaml: document 1 \\(line 8\\): spec\\.placement\\.strategy`));
    assert.equal(getCondition(gs.status?.conditions, 'Ready')?.reason, 'ValidationFailed');
    assert.equal(getCondition(gs.status?.conditions, 'Stalled')?.status, 'True');
    // What an operator sees.
    const get = await runVcctlInProcess(['get', 'gitsources', '-o', 'wide'], env);
    assert.equal(get.code, 0, get.stderr);
    const row = get.stdout.split('\n').find((l) => l.startsWith('work '));
    assert.ok(row, get.stdout);
    assert.match(row, new RegExp(`${good.slice(0, 12)}\\s+False\\s.*broken\\.yaml: document 1 \\(line 8\\): spec\\.placement\\.strategy`));
    const describe = await runVcctlInProcess(['describe', 'gitsource', 'work'], env);
    assert.equal(describe.code, 0, describe.stderr);
    assert.match(describe.stdout, /Ready\s+False\s+ValidationFailed/);
    assert.match(describe.stdout, /Warning\s+ValidationFailed[\s\S]*broken\.yaml/);

    fx.write(fx.work, 'clusters/broken.yaml', virtualCluster('broken', 1, 'Block'));
    const fixed = fx.commit(fx.work, 'fix');
    const r2 = await sync('--prune');
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal((await store.get<VirtualCluster>(VC('stripes'))).spec?.nodes, 5);
    assert.ok(await store.tryGet(PN('blade2')));
    assert.ok(await store.tryGet(VC('broken')));
    assert.equal(await store.tryGet({ kind: 'OSTemplate', name: 'busybox' }), undefined);
    gs = await source();
    assert.equal(gs.status?.lastAppliedRevision, fixed);
    assert.equal(gs.status?.lastError, '');
    assert.equal(getCondition(gs.status?.conditions, 'Ready')?.status, 'True');
    assert.equal(getCondition(gs.status?.conditions, 'Stalled')?.status, 'False');
  });

  it('an empty directory prunes nothing (unless --allow-empty)', async () => {
    assert.equal((await sync('--prune')).code, 0);
    fx.remove(fx.work, 'nodes/blade1.yaml');
    fx.remove(fx.work, 'templates/busybox.yml');
    fx.remove(fx.work, 'clusters/stripes.yaml');
    fx.commit(fx.work, 'oops, everything gone');

    const r = await sync('--prune');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /EmptySource/);
    assert.match(r.stderr, /--allow-empty/);
    for (const ref of [PN('blade1'), VC('stripes'), { kind: 'OSTemplate', name: 'busybox' }]) {
      assert.ok(await store.tryGet(ref), `${ref.name} kept`);
    }
    const gs = await source();
    assert.equal(getCondition(gs.status?.conditions, 'Ready')?.reason, 'EmptySource');
    assert.equal(gs.status?.inventory?.length, 3);

    const r2 = await sync('--prune', '--allow-empty');
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(await store.tryGet(PN('blade1')), undefined);
    assert.equal(await store.tryGet(VC('stripes')), undefined);
    assert.deepEqual((await source()).status?.inventory, []);
  });

  it('records a content revision for uncommitted changes and refuses to reuse a source of another directory', async () => {
    fx.write(fx.work, 'clusters/extra.yaml', virtualCluster('extra', 1));
    const r = await sync();
    assert.equal(r.code, 0, r.stderr);
    assert.match((await source()).status?.lastAppliedRevision ?? '', new RegExp(`^${fx.head(fx.work)}-dirty-[0-9a-f]{12}$`));

    fx.write(fx.upstream, 'work/x.yaml', physicalNode('other'));
    const other = await runVcctlInProcess(['sync', '--dir', join(fx.upstream, 'work')], env);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /GitSource default\/work already syncs .* Pass --name/);
    assert.equal(await store.tryGet(PN('other')), undefined);
  });

  it('a directory that does not exist is an error and creates no GitSource', async () => {
    const r = await runVcctlInProcess(['sync', '--dir', join(fx.root, 'typo')], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot read the directory .*typo.*no GitSource was created/);
    assert.deepEqual((await store.list('GitSource')).items, []);
  });

  it('--watch picks up an edit (a real vcctl process)', async () => {
    const p = startVcctl(['sync', '--dir', fx.work, '--watch', '--prune'], env);
    procs.push(p);
    await eventually(async () => (await store.tryGet(VC('stripes'))) ?? undefined, 'the first sync', 60_000);
    // Let the watcher settle after the first sync, then edit one file.
    await eventually(async () => (p.stdout().includes('synced revision') ? true : undefined), 'the first sync report', 60_000);
    const t0 = Date.now();
    fx.write(fx.work, 'clusters/stripes.yaml', virtualCluster('stripes', 7));
    const vc = await eventually(async () => {
      const o = await store.tryGet<VirtualCluster>(VC('stripes'));
      return o?.spec?.nodes === 7 ? o : undefined;
    }, 'the edit to be applied');
    const latency = Date.now() - t0;
    console.log(`      watch: edit applied ${latency} ms after the write (measured, not asserted)`);
    assert.equal(vc.spec?.nodes, 7);
    // An invalid file while watching: reported on stderr and in the status, nothing applied.
    fx.write(fx.work, 'clusters/stripes.yaml', virtualCluster('stripes', 9));
    fx.write(fx.work, 'clusters/broken.yaml', virtualCluster('broken', 1, 'Diagonal'));
    await eventually(async () => (/ValidationFailed[\s\S]*broken\.yaml: document 1 \(line 8\): spec\.placement\.strategy/.test(p.stderr()) ? true : undefined), 'the error on stderr');
    assert.equal((await store.get<VirtualCluster>(VC('stripes'))).spec?.nodes, 7);
    assert.equal(getCondition((await source()).status?.conditions, 'Ready')?.reason, 'ValidationFailed');
    fx.remove(fx.work, 'clusters/broken.yaml');
    await eventually(async () => ((await store.get<VirtualCluster>(VC('stripes'))).spec?.nodes === 9 ? true : undefined), 'the fixed state');
    // A removal while watching, with --prune.
    fx.remove(fx.work, 'clusters/stripes.yaml');
    await eventually(async () => ((await store.tryGet(VC('stripes'))) ? undefined : true), 'the prune');
    assert.ok(await store.tryGet(PN('blade1')));
    assert.equal(await p.stop(), 0);
  });

  it('--interval pulls a commit pushed to the bare remote (a real vcctl process)', async () => {
    fx.pushWork();
    const p = startVcctl(['sync', '--dir', fx.work, '--interval', '1s'], env);
    procs.push(p);
    await eventually(async () => (await store.tryGet(VC('stripes'))) ?? undefined, 'the first sync', 60_000);
    const pushed = fx.pushUpstream({ 'clusters/pushed.yaml': virtualCluster('pushed', 1) }, 'from upstream');
    const vc = await eventually(async () => (await store.tryGet<VirtualCluster>(VC('pushed'))) ?? undefined, 'the pushed commit');
    assert.equal(vc.spec?.nodes, 1);
    const gs = await eventually(async () => {
      const s = await store.tryGet<GitSource>(GS);
      return s?.status?.lastAppliedRevision === pushed ? s : undefined;
    }, 'the GitSource to record the pushed commit');
    assert.equal(gs.spec?.interval, '1s');
    assert.equal(fx.head(fx.work), pushed);
    assert.equal(await p.stop(), 0);
  });
});
