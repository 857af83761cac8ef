// Issue 23: the leader dies in the middle of a sync. Two real vc-manager processes (only the gitops
// controller) on one embedded store; the leader starts applying a revision of many objects and is
// SIGKILLed once the first batch is in the store. The standby takes over, finishes the revision,
// and writes none of the objects the dead leader already wrote a second time.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getCondition } from '../../api/conditions.js';
import type { Store } from '../../api/store/types.js';
import type { EventObject, VirtualCluster } from '../../api/types.js';
import type { GitSource } from '../../reconcilers/gitops/sync-status.js';
import { waitFor } from '../controllers/helpers.js';
import { httpGet, startManager, type ManagerProcess } from '../controllers/processes.js';
import { storeSite, type StoreSite } from './store-site.js';
import { GitFixture } from './git-fixture.js';
import { virtualCluster } from './sync-helpers.js';

const N = 1500;
const name = (i: number) => `vc-${String(i).padStart(4, '0')}`;

describe('gitops controller: the leader dies mid-sync (two vc-manager processes)', function () {
  this.timeout(600_000);
  let fx: GitFixture;
  let cache: string;
  let site: StoreSite | undefined;
  let store: Store;
  let storeUrl: string;
  let managers: ManagerProcess[] = [];
  let savedCache: string | undefined;

  before(async () => {
    fx = new GitFixture('vc-gitops-failover-');
    cache = mkdtempSync(join(tmpdir(), 'vc-gitops-failover-cache-'));
    savedCache = process.env.VIRTUALINUX_GITOPS_CACHE;
    process.env.VIRTUALINUX_GITOPS_CACHE = cache; // inherited by the managers
    // The embedded store, or with VL_E2E_STORE=etcd-cluster a 3-member etcd cluster (store-site.ts).
    site = await storeSite();
    ({ store, url: storeUrl } = await site.open(fx.root));
  });
  after(async () => {
    for (const m of managers) await m.kill();
    if (savedCache === undefined) delete process.env.VIRTUALINUX_GITOPS_CACHE;
    else process.env.VIRTUALINUX_GITOPS_CACHE = savedCache;
    await store?.close();
    await site?.close();
    fx.cleanup();
    rmSync(cache, { recursive: true, force: true });
  });

  const readyz = async (m: ManagerProcess) => (m.addr ? (await httpGet(m.addr, '/readyz').catch(() => ({ body: '' }))).body : '');

  it('the next leader finishes the revision without writing an object twice', async () => {
    // files of 50 documents: the manager parses one file at a time and renews its lease in between
    const files: Record<string, string> = {};
    for (let f = 0; f < N / 50; f++) {
      files[`clusters/part-${String(f).padStart(2, '0')}.yaml`] = Array.from({ length: 50 }, (_, i) => virtualCluster(name(f * 50 + i), 1)).join('---\n');
    }
    const commit = fx.pushUpstream(files, `${N} clusters`);
    const args = ['--store', storeUrl, '--controllers', 'gitops', '--lease-ttl', '5'];
    const a = startManager('gitops-a', args);
    managers.push(a);
    await waitFor('a leads', async () => /leader/.test(await readyz(a)), 60_000, 100);
    const b = startManager('gitops-b', args);
    managers.push(b);
    await waitFor('b stands by', async () => /standby/.test(await readyz(b)), 60_000, 100);

    await store.create<GitSource>({
      apiVersion: 'virtualinux.org/v1alpha1', kind: 'GitSource', metadata: { name: 'many', namespace: 'default' },
      spec: { url: fx.remote, ref: 'main', path: 'clusters', interval: '2s', prune: true },
    });
    await waitFor('the first batch of the leader', () => store.tryGet({ kind: 'VirtualCluster', namespace: 'default', name: name(0) }), 240_000, 5)
      .catch((err: Error) => { throw new Error(`${err.message}; a logged ${JSON.stringify(a.lines.slice(-8))}`); });
    await a.kill();
    const written = new Map((await store.list<VirtualCluster>('VirtualCluster')).items.map((o) => [o.metadata.name, o.metadata.resourceVersion]));
    console.log(`      leader killed with ${written.size} of ${N} objects written`);
    assert.ok(written.size > 0 && written.size < N, `the kill must land mid-sync (${written.size} of ${N} written); raise N`);
    assert.equal((await store.get<GitSource>({ kind: 'GitSource', namespace: 'default', name: 'many' })).status?.lastAppliedRevision, undefined);

    const s = await waitFor('b finishes the revision', async () => {
      const st = (await store.get<GitSource>({ kind: 'GitSource', namespace: 'default', name: 'many' })).status;
      return st?.lastAppliedRevision === commit && getCondition(st.conditions, 'Ready')?.status === 'True' ? st : undefined;
    }, 240_000, 100).catch(async (err: Error) => {
      const st = (await store.get<GitSource>({ kind: 'GitSource', namespace: 'default', name: 'many' })).status;
      throw new Error(`${err.message}; status ${JSON.stringify({ ...st, inventory: st?.inventory?.length })}; b logged ${JSON.stringify(b.lines.slice(-8))}`);
    });
    assert.equal(s.appliedCount, N);
    const all = (await store.list<VirtualCluster>('VirtualCluster')).items;
    assert.equal(all.length, N);
    for (const o of all) {
      assert.equal(o.metadata.generation, 1, o.metadata.name);
      if (written.has(o.metadata.name)) assert.equal(o.metadata.resourceVersion, written.get(o.metadata.name), `${o.metadata.name} written again`);
    }
    // Objects written before the kill kept their resourceVersion (checked above): none was written
    // twice. A Synced Event names the commit; its count is what the last sync created, which under
    // load may follow an earlier attempt of b cut short by a lease renewal that came too late.
    const synced = await waitFor('the Synced Event of b', async () => {
      const evs = (await store.list<EventObject>('Event')).items
        .filter((e) => e.spec?.involvedObject.name === 'many').map((e) => `${e.spec?.reason}: ${e.spec?.message}`);
      return evs.some((e) => e.startsWith('Synced: ')) ? evs : undefined;
    }, 60_000, 100);
    console.log(`      events: ${synced.join(' | ')}; b lost leadership ${b.lines.filter((l) => l.msg === 'leadership lost').length} time(s)`);
    assert.ok(synced.some((e) => e.startsWith(`Synced: revision ${commit}: `)), synced.join('\n'));
    if (synced.length === 1 && !b.lines.some((l) => l.msg === 'leadership lost')) {
      assert.equal(synced[0], `Synced: revision ${commit}: ${N - written.size} object(s) created or configured, 0 pruned`);
    }
  });
});
