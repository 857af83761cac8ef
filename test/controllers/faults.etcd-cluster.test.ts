// Faults of a real 3-member etcd cluster (hack/etcd-cluster) under real vc-manager processes
// running the VirtualCluster and placement controllers. Each fault comes with a history check
// (history.ts): every write the store acknowledged is there afterwards, nothing is created twice,
// no node is overcommitted at any revision, no VirtualNode is bound to a second node (it would run
// twice: with no hypervisors here, the binding is what says where a VM runs), and afterwards an
// informer cache that lived through the fault equals a fresh list.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdStore } from '../../api/store/etcd-store.js';
import type { RangeResponse } from '../../api/store/etcd-kv-store.js';
import type { Store } from '../../api/store/types.js';
import type { ApiObject, PhysicalNode, VirtualCluster } from '../../api/types.js';
import { SharedCache } from '../../controllers/cache.js';
import { DEFAULT_ELECTION_KEY } from '../../controllers/leader-election.js';
import {
  etcdClusterDown, etcdClusterUp, inMemberNetns, memberRoles, partitionMember, readEtcdCluster, startMember, stopMember,
  waitHealthy, type EtcdClusterState,
} from '../../hack/lib/etcd-cluster.js';
import { physicalNode, virtualCluster } from '../placement/fixtures.js';
import { WRITER_ANNOTATION } from './fixtures/fence-writer.js';
import { cacheMatchesList, checkHistory, recordHistory, type History } from './history.js';
import { openTestStore, sleep, waitFor } from './helpers.js';
import { startManager, type ManagerProcess } from './processes.js';

const TTL = 3;
const CONTROLLERS = 'virtualcluster,placement';
const NODES = 4;
const CORES = 26; // 50 VCs x 2 one-vCPU VMs = 100 cores on 104: tight, Strict

describe('faults of a 3-member etcd cluster under vc-manager (history checked)', function () {
  this.timeout(300_000);
  let dir: string;
  let s: EtcdClusterState;
  let baseUrl: string;
  const stores: Store[] = [];
  const procs: ManagerProcess[] = [];
  const caches: SharedCache[] = [];
  const histories: History[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-ec-faults-'));
    s = await etcdClusterUp({ dir, members: 3 });
    baseUrl = readFileSync(s.storeUrlFile, 'utf8').trim();
  });
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' || process.env.VL_FAULTS_DUMP) {
      // What the managers said is the only record of why a fault was not survived (VL_FAULTS_DUMP=1: always).
      for (const p of procs) {
        console.log(`      --- ${p.identity} (last 150 of ${p.text.length} lines) ---`);
        for (const l of p.text.slice(-150)) console.log(`      ${l}`);
      }
    }
    for (const h of histories.splice(0)) h.stop();
    for (const c of caches.splice(0)) c.stop();
    await Promise.all(procs.splice(0).map((p) => p.kill()));
    for (const st of stores.splice(0)) await st.close();
    // Whatever a test left cut off or down comes back for the next.
    const now = await readEtcdCluster(dir);
    for (const m of now.members) {
      if (m.partitioned) await partitionMember(dir, m.name, false);
      if (!m.pid) await startMember(dir, m.name);
    }
  });
  after(async () => {
    if (dir) await etcdClusterDown(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  /** A fresh key prefix per test, the test's client, its history and a cache that lives through the fault. */
  async function setup(prefix: string): Promise<{ url: string; store: Store; history: History; cache: SharedCache; nodes: PhysicalNode[] }> {
    const url = `${baseUrl}&prefix=/${prefix}`;
    const store = await openTestStore(url);
    stores.push(store);
    const start = await store.revision();
    const history = recordHistory(store, ['VirtualCluster', 'VirtualNode'], start + 1);
    histories.push(history);
    const nodes: PhysicalNode[] = [];
    for (let i = 1; i <= NODES; i++) nodes.push(await store.create(physicalNode(`blade${i}`, CORES, 65536)));
    const cache = new SharedCache(store);
    for (const k of ['VirtualCluster', 'VirtualNode', 'PhysicalNode']) cache.informer(k);
    cache.start();
    caches.push(cache);
    await cache.waitForSync();
    return { url, store, history, cache, nodes };
  }

  const managerArgs = (url: string, extra: string[] = []) =>
    ['--store', url, '--lease-ttl', String(TTL), '--controllers', CONTROLLERS, '--log-level', process.env.VL_FAULTS_LOG_LEVEL ?? 'info', ...extra];
  const leads = (p: ManagerProcess) => p.lines.some((l) => l.msg === 'controllers started');

  /** One vc-manager running the controllers, once it leads. */
  async function startLeader(url: string): Promise<ManagerProcess> {
    const m = startManager('mgr-1', managerArgs(url));
    procs.push(m);
    await waitFor('manager leads', () => leads(m), 60_000);
    return m;
  }

  /** The writes that landed when the election key (at the write's revision) was not their writer's. */
  async function writesOutsideTheirTerm<W extends { writer: string; revision: number }>(store: Store, writes: W[]): Promise<(W & { holder?: string })[]> {
    assert.ok(store instanceof EtcdStore, 'the fencing test runs on etcd');
    const key = store.rawKey(DEFAULT_ELECTION_KEY);
    const outside: (W & { holder?: string })[] = [];
    for (const w of writes) {
      const res = await store.call(`the election key at revision ${w.revision}`, (c, o) => c.kv.range({ key, revision: String(w.revision) }, o)) as RangeResponse;
      const holder = res.kvs[0]?.value.toString();
      if (holder !== w.writer) outside.push({ ...w, holder });
    }
    return outside;
  }

  async function allPlaced(store: Store, ns: string, count: number, timeoutMs: number): Promise<void> {
    const placed = (vc: VirtualCluster) => vc.status?.conditions?.some((c) => c.type === 'Placed' && c.status === 'True');
    try {
      await waitFor(`${count} VCs Placed in ${ns}`, async () => {
        const vcs = (await store.list<VirtualCluster>('VirtualCluster', { namespace: ns })).items;
        return vcs.length === count && vcs.every(placed);
      }, timeoutMs, 500);
    } catch (err) {
      const vcs = (await store.list<VirtualCluster>('VirtualCluster', { namespace: ns })).items;
      for (const vc of vcs.filter((v) => !placed(v))) {
        console.log(`      not placed: ${vc.metadata.name} rv ${vc.metadata.resourceVersion} conditions ${JSON.stringify(vc.status?.conditions ?? [])}`);
      }
      throw err;
    }
  }

  async function createVCs(store: Store, ns: string, from: number, to: number, acked: ApiObject[], during?: (i: number) => Promise<void>): Promise<void> {
    for (let i = from; i < to; i++) {
      await during?.(i);
      acked.push(await store.create(virtualCluster(`vc${i}`, 2, 1, 512, i % 2 ? 'Cyclic' : 'Block', 'Strict', 'Running', ns)));
    }
  }

  async function finish(name: string, store: Store, history: History, cache: SharedCache, acked: ApiObject[], nodes: PhysicalNode[]): Promise<void> {
    await cacheMatchesList(store, cache);
    await sleep(500); // the history's watch catches up
    const r = await checkHistory(store, history, acked, nodes);
    console.log(`      ${name}: ${acked.length} acknowledged writes present, ${r.events} events checked, fullest node ${r.maxCores}/${CORES} cores`);
  }

  it('the etcd leader killed during the apply and placement of 50 VCs', async () => {
    const { url, store, history, cache, nodes } = await setup('f-leader');
    const m = await startLeader(url);
    const acked: ApiObject[] = [];
    let killed = '';
    const t0 = Date.now();
    await createVCs(store, 'f1', 0, 50, acked, async (i) => {
      if (i !== 15) return;
      killed = (await memberRoles(await readEtcdCluster(dir))).find((r) => r.role === 'leader')!.name;
      await stopMember(dir, killed);
    });
    assert.ok(killed, 'there was a leader to kill');
    const writeMs = Date.now() - t0;
    await allPlaced(store, 'f1', 50, 90_000);
    await startMember(dir, killed);
    await waitHealthy(await readEtcdCluster(dir), 30_000);
    console.log(`      killed ${killed} after 15 of 50 creates; all 50 acknowledged in ${writeMs} ms`);
    await finish('leader killed', store, history, cache, acked, nodes);
  });

  it('one member partitioned away and back while VCs are applied and placed', async () => {
    const { url, store, history, cache, nodes } = await setup('f-part');
    const m = await startLeader(url);
    const acked: ApiObject[] = [];
    const victim = (await memberRoles(await readEtcdCluster(dir))).find((r) => r.role === 'leader')!.name;
    await createVCs(store, 'f2', 0, 30, acked, async (i) => {
      if (i === 10) await partitionMember(dir, victim, true);
      if (i === 25) await partitionMember(dir, victim, false);
    });
    await allPlaced(store, 'f2', 30, 90_000);
    await waitHealthy(await readEtcdCluster(dir), 30_000);
    // The member that was away has caught up: reading from it alone returns the same.
    const only = await openTestStore(url.replace(/^etcd:\/\/[^?]*/, `etcd://${s.members.find((x) => x.name === victim)!.address}:2379`));
    stores.push(only);
    assert.equal((await only.list('VirtualNode', { namespace: 'f2' })).items.length, 60);
    console.log(`      partitioned ${victim} (the etcd leader) during creates 10-25`);
    await finish('member partitioned', store, history, cache, acked, nodes);
  });

  it('the vc-manager leader partitioned from the majority: its writes are fenced, another leads within TTL + 2 s', async () => {
    const { url, store, history, cache, nodes } = await setup('f-mgr');
    // The leader runs in a follower member's namespace: cutting that member off cuts the manager
    // off from the majority (it reaches only its own member, which then has no leader).
    const follower = (await memberRoles(await readEtcdCluster(dir))).find((r) => r.role === 'follower')!.name;
    const fixture = ['--load', 'test/controllers/fixtures/fence-writer.ts'];
    const args = (): string[] => ['--store', url, '--lease-ttl', String(TTL), '--controllers', `${CONTROLLERS},fence-writer`, '--log-level', 'info', ...fixture];
    const a = startManager('mgr-a', args(), inMemberNetns(s, follower, []));
    procs.push(a);
    await waitFor('mgr-a leads', () => leads(a), 60_000);
    const b = startManager('mgr-b', args());
    procs.push(b);
    await waitFor('mgr-b standby', () => b.lines.some((l) => l.msg === 'vc-manager started'), 60_000);
    await store.create({ apiVersion: 'test/v1', kind: 'FenceProbe', metadata: { name: 'probe' }, spec: {} });
    const writes: { writer: string; revision: number; at: number }[] = [];
    // The test's own watch may be served by the member about to be cut off: the store ends a watch
    // whose connection stays down for 10 s (seen under CI load), so it is opened again after the
    // last revision it delivered; etcd keeps that history, so no write goes unrecorded.
    let next = (await store.revision()) + 1;
    let closed = false;
    let w: { close(): void } = { close: () => undefined };
    const openWatch = (): void => {
      w = store.watch<ApiObject>('FenceProbe', { fromRevision: next }, {
        onEvent: (ev) => {
          next = ev.revision + 1;
          const writer = ev.object.metadata.annotations?.[WRITER_ANNOTATION];
          if (writer) writes.push({ writer, revision: ev.revision, at: Date.now() });
        },
        onError: () => { if (!closed) setTimeout(() => { if (!closed) openWatch(); }, 200); },
      });
    };
    openWatch();
    try {
      const acked: ApiObject[] = [];
      await createVCs(store, 'f3', 0, 10, acked);
      await waitFor('mgr-a writes', () => writes.some((x) => x.writer === 'mgr-a'), 20_000);

      await partitionMember(dir, follower, true);
      const cutAt = Date.now();
      const led = await waitFor('mgr-b leads', () => b.lines.find((l) => l.msg === 'became leader'), (TTL + 10) * 1000, 20);
      const takeover = (led.at as number) - cutAt;
      // not a timing claim (the takeover is, above): the test's own watch may have to reopen past the
      // cut-off member first, which took over 30 s once beside a whole npm test (Dec 6 rehearsal)
      const firstB = await waitFor('mgr-b writes', () => writes.find((x) => x.writer === 'mgr-b'), 90_000, 20);
      await createVCs(store, 'f3', 10, 20, acked);
      await allPlaced(store, 'f3', 20, 120_000);
      await partitionMember(dir, follower, false);
      const healedAt = Date.now();
      await waitFor('mgr-a says it lost the lead', () => a.lines.some((l) => l.msg === 'leadership lost'), 20_000);
      await sleep(3000);
      // The property the fence must give, checked on etcd's own history: every write landed while its
      // writer held the election key (the key's state at the write's revision). A deposed leader's
      // write is one that landed under another's key. After the heal the lead may legitimately move
      // back to mgr-a (the rejoining member's election can outlast mgr-b's renewal deadline: seen in
      // CI on Dec 6), so "no write of mgr-a after mgr-b's first" is not the property.
      const outside = await writesOutsideTheirTerm(store, writes);
      const late = writes.filter((x) => x.writer === 'mgr-a' && x.revision > firstB.revision);
      const refusedAfterHeal = a.lines.filter((l) => l.msg === 'fence-writer attempt' && l.outcome === 'refused' && (l.at as number) >= healedAt).length;
      const bLost = b.lines.find((l) => l.msg === 'leadership lost');
      console.log(`      cut ${follower} with mgr-a: mgr-b led ${takeover} ms later and wrote after ${firstB.at - cutAt} ms; ` +
        `${writes.length} writes checked against the election key's history, ${outside.length} outside their writer's term; ` +
        `mgr-a's writes after mgr-b's first: ${late.length} (each in a term of its own), ${refusedAfterHeal} refused after the heal` +
        (bLost ? `; mgr-b lost the lead after the heal: ${String(bLost.reason)}` : ''));
      assert.equal(outside.length, 0, `writes landed outside their writer's term: ${JSON.stringify(outside)}`);
      assert.ok(late.every((x) => x.at > healedAt), 'no write of mgr-a landed while it was cut off and mgr-b led');
      assert.ok(takeover < TTL * 1000 + 2000, `takeover took ${takeover} ms; must be under ${TTL * 1000 + 2000}`);
      assert.ok(writes.some((x) => x.at > healedAt), 'a leader keeps working after the heal');
      await finish('manager leader cut off', store, history, cache, acked, nodes);
    } finally {
      closed = true;
      w.close();
    }
  });

  it('all members restarted (killed and started again) under a running manager', async () => {
    const { url, store, history, cache, nodes } = await setup('f-all');
    const m = await startLeader(url);
    const acked: ApiObject[] = [];
    await createVCs(store, 'f4', 0, 15, acked);
    for (const x of s.members) await stopMember(dir, x.name);
    await sleep(1000);
    for (const x of s.members) await startMember(dir, x.name, false);
    await waitHealthy(await readEtcdCluster(dir), 60_000);
    await createVCs(store, 'f4', 15, 30, acked);
    await allPlaced(store, 'f4', 30, 120_000);
    assert.equal(m.child.exitCode, null, 'the manager lived through it');
    await finish('all restarted', store, history, cache, acked, nodes);
  });
});
