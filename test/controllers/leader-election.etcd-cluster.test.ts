// The leader's lease on a real 3-member etcd cluster (hack/lib/etcd-cluster: one network namespace
// per member) when the member its store talks to goes away: the lease must be renewed through the
// others within the renewal deadline (2/3 of the TTL), so the leader keeps its term. Before session
// 13 a renewal waited for one member for a whole attempt (a third of the store's 10 s deadline):
// with a short TTL the term ended although two members of three answered.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Store } from '../../api/store/types.js';
import { LeaderElector } from '../../controllers/leader-election.js';
import {
  etcdClusterDown, etcdClusterUp, memberRoles, partitionMember, pauseMember, readEtcdCluster, waitHealthy,
  type EtcdClusterState,
} from '../../hack/lib/etcd-cluster.js';
import { openTestStore, sleep, waitFor } from './helpers.js';

const TTL = 3;

describe('leader election on a 3-member etcd cluster: the member the leader talks to goes away', function () {
  this.timeout(180_000);
  let dir: string;
  let s: EtcdClusterState;
  let url: string;
  const opened: Store[] = [];
  const electors: LeaderElector[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-ec-le-'));
    s = await etcdClusterUp({ dir, members: 3 });
    url = readFileSync(s.storeUrlFile, 'utf8').trim();
  });
  afterEach(async () => {
    await Promise.all(electors.splice(0).map((e) => e.shutdown().catch(() => undefined)));
    await Promise.all(opened.splice(0).map((x) => x.close().catch(() => undefined)));
    const now = await readEtcdCluster(dir);
    for (const m of now.members) {
      if (m.partitioned) await partitionMember(dir, m.name, false);
      if (m.paused) await pauseMember(dir, m.name, false);
    }
    await waitHealthy(await readEtcdCluster(dir), 60_000);
  });
  after(async () => {
    if (dir) await etcdClusterDown(dir);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A store whose first member (the one it asks first) is `first`, a follower. */
  async function storeAsking(first: string): Promise<Store> {
    const m = s.members.find((x) => x.name === first)!;
    const [scheme, rest] = url.split('://') as [string, string];
    const [hosts, query] = rest.split('?') as [string, string];
    const listed = hosts.split(',');
    const mine = listed.find((h) => h.startsWith(`${m.address}:`))!;
    const store = await openTestStore(`${scheme}://${[mine, ...listed.filter((h) => h !== mine)].join(',')}?${query}`);
    opened.push(store);
    return store;
  }

  /** Leads on `store` with a TTL of 3 s; counts the terms and how each ended. */
  async function leaderOn(store: Store, key: string): Promise<{ e: LeaderElector; ended: string[] }> {
    const ended: string[] = [];
    const e = new LeaderElector({
      store, identity: 'cand', ttlSeconds: TTL, key,
      onStartedLeading: () => undefined,
      onStoppedLeading: (reason) => { ended.push(reason); },
    });
    electors.push(e);
    void e.start();
    await waitFor('leads', () => e.isLeader(), 20_000);
    return { e, ended };
  }

  /** Watches the leader for `ms`: how long it was without a fence, in total. */
  async function unledFor(e: LeaderElector, ms: number): Promise<number> {
    let gap = 0;
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const t = Date.now();
      await sleep(50);
      if (!e.isLeader()) gap += Date.now() - t;
    }
    return gap;
  }

  for (const fault of ['cut off by the network', 'hung (SIGSTOP)'] as const) {
    it(`a follower ${fault} while the leader's store asks it first: one term throughout, through the fault and its end`, async () => {
      const follower = (await memberRoles(await readEtcdCluster(dir))).find((r) => r.role === 'follower')!.name;
      const store = await storeAsking(follower);
      const key = `test/le-cluster-${fault.split(' ')[0]}`;
      const { e, ended } = await leaderOn(store, key);
      await sleep(1500);
      if (fault === 'cut off by the network') await partitionMember(dir, follower, true);
      else await pauseMember(dir, follower, true);
      const during = await unledFor(e, 4 * TTL * 1000);
      if (fault === 'cut off by the network') await partitionMember(dir, follower, false);
      else await pauseMember(dir, follower, false);
      const after = await unledFor(e, 2 * TTL * 1000);
      assert.deepEqual(ended, [], `the term ended: ${ended.join('; ')}`);
      assert.equal(e.terms, 1, 'one term');
      assert.equal(during + after, 0, `without a fence for ${during} ms during the fault, ${after} ms after it`);
      assert.equal((await store.leases.getRaw(key))?.value, 'cand', 'the key is still held');
    });
  }

  it('every member hung past the store deadline: whichever elector leads afterwards, the other leads when it goes (a lease that died while standing by is replaced)', async () => {
    const [m1, m2] = s.members;
    const key = 'test/le-cluster-all-hung';
    const { e: first } = await leaderOn(await storeAsking(m1!.name), key);
    const standby = new LeaderElector({ store: await storeAsking(m2!.name), identity: 'standby', ttlSeconds: TTL, key, onStartedLeading: () => undefined });
    electors.push(standby);
    void standby.start();
    await sleep(1500);
    // Every call fails with "store unavailable" after the store's 10 s deadline; both leases expire.
    for (const m of s.members) await pauseMember(dir, m.name, true);
    await sleep(12_000);
    for (const m of s.members) await pauseMember(dir, m.name, false);
    await waitHealthy(await readEtcdCluster(dir), 60_000);
    const leader = await waitFor('someone leads', () => [first, standby].find((e) => e.isLeader()), 6 * TTL * 1000);
    const other = leader === first ? standby : first;
    const t = Date.now();
    await leader.shutdown();
    await waitFor(`${leader === first ? 'the standby' : 'the first leader'} leads after the other shut down`, () => other.isLeader(), 4 * TTL * 1000);
    console.log(`      ${leader === first ? 'the first leader' : 'the standby'} led after the hang; the other led ${Date.now() - t} ms after it shut down`);
  });
});
