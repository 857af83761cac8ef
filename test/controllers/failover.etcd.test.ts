// Leader election with fencing, on a real etcd with real vc-manager processes.

import assert from 'node:assert/strict';
import { startEtcd, type EtcdHarness } from '../../hack/lib/etcd-harness.js';
import { openStore } from '../../api/store/open-store.js';
import type { Store, WatchEvent } from '../../api/store/types.js';
import type { ApiObject, VirtualCluster, VirtualNode } from '../../api/types.js';
import { WRITER_ANNOTATION } from './fixtures/fence-writer.js';
import { httpGet, startManager, type ManagerProcess } from './processes.js';
import { sleep, virtualCluster, waitFor } from './helpers.js';

const TTL = 3;
const FIXTURE = 'test/controllers/fixtures/fence-writer.ts';

describe('vc-manager failover on etcd (two processes)', function () {
  this.timeout(120_000);
  let etcd: EtcdHarness;
  let store: Store;
  const procs: ManagerProcess[] = [];

  before(async () => {
    etcd = await startEtcd();
    store = await openStore(etcd.url);
  });
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill()));
  });
  after(async () => {
    await store?.close();
    await etcd?.stop();
  });

  const leaderOf = (...ps: ManagerProcess[]) =>
    ps.find((p) => p.lines.some((l) => l.msg === 'controllers started') && !p.lines.some((l) => l.msg === 'leadership lost'));

  it('a SIGSTOPped leader is replaced within TTL + 2 s, and none of its writes lands after SIGCONT', async () => {
    await store.create({ apiVersion: 'test/v1', kind: 'FenceProbe', metadata: { name: 'probe' }, spec: {} });
    const start = await store.revision();
    const writes: { writer: string; revision: number; at: number }[] = [];
    const w = store.watch<ApiObject>('FenceProbe', { fromRevision: start + 1 }, {
      onEvent: (ev: WatchEvent<ApiObject>) => {
        const writer = ev.object.metadata.annotations?.[WRITER_ANNOTATION];
        if (writer) writes.push({ writer, revision: ev.revision, at: Date.now() });
      },
      onError: (err) => console.log('      test watch ended:', err.message),
    });
    try {
      const args = ['--store', etcd.url, '--lease-ttl', String(TTL), '--controllers', 'fence-writer', '--load', FIXTURE, '--log-level', 'info'];
      const a = startManager('mgr-a', args);
      procs.push(a);
      await waitFor('mgr-a writes', () => writes.some((x) => x.writer === 'mgr-a'), 30_000);
      const b = startManager('mgr-b', args);
      procs.push(b);
      await waitFor('mgr-b ready as standby', async () => b.addr && (await httpGet(b.addr, '/readyz')).body.includes('standby'), 30_000);
      assert.equal((await httpGet(a.addr!, '/readyz')).status, 200);
      assert.match((await httpGet(a.addr!, '/metrics')).body, /vcm_reconcile_duration_seconds_count\{controller="fence-writer",result="requeue"\} [1-9]/);
      assert.ok(!writes.some((x) => x.writer === 'mgr-b'), 'the standby wrote nothing');

      a.child.kill('SIGSTOP');
      const stoppedAt = Date.now();
      const firstB = await waitFor('mgr-b takes over', () => writes.find((x) => x.writer === 'mgr-b'), (TTL + 5) * 1000, 10);
      const takeover = firstB.at - stoppedAt;
      assert.ok(takeover < TTL * 1000 + 2000, `takeover took ${takeover} ms; must be under ${TTL * 1000 + 2000}`);

      await sleep(500);
      a.child.kill('SIGCONT');
      const contAt = Date.now();
      await waitFor('mgr-a notices it lost the lead', () => a.lines.some((l) => l.msg === 'leadership lost'), 10_000);
      await sleep(2000);
      const late = writes.filter((x) => x.writer === 'mgr-a' && x.revision > firstB.revision);
      assert.equal(late.length, 0, `writes of the deposed leader landed: ${JSON.stringify(late)}`);
      assert.ok(writes.filter((x) => x.writer === 'mgr-b' && x.at > contAt).length > 0, 'the new leader keeps working');
      const refused = a.lines.filter((l) => l.msg === 'fence-writer attempt' && l.outcome === 'refused' && (l.at as number) >= contAt).length;
      console.log(`      takeover ${takeover} ms; deposed leader's attempts after SIGCONT refused: ${refused}, landed: ${late.length}`);
      // The deposed manager goes back to standby and is ready as such.
      await waitFor('mgr-a standby', async () => (await httpGet(a.addr!, '/readyz')).body.includes('standby'), 10_000);
    } finally {
      w.close();
    }
  });

  it('SIGKILL of the leader in the middle of work: the other finishes it, the state converges', async () => {
    const args = ['--store', etcd.url, '--lease-ttl', String(TTL), '--controllers', 'virtualcluster,garbage-collector', '--log-level', 'info'];
    const a = startManager('kill-a', args);
    procs.push(a);
    await waitFor('kill-a ready', async () => a.addr && (await httpGet(a.addr, '/readyz')).status === 200, 30_000);
    const b = startManager('kill-b', args);
    procs.push(b);
    await waitFor('kill-b ready', async () => b.addr && (await httpGet(b.addr, '/readyz')).status === 200, 30_000);
    const leader = (await httpGet(a.addr!, '/readyz')).body.includes('leader') ? a : b;
    const other = leader === a ? b : a;

    const sizes = [30, 25, 20, 15, 10];
    for (let i = 0; i < sizes.length; i++) await store.create(virtualCluster(`kv${i}`, sizes[i]!, 'killtest'));
    await waitFor('work in progress', async () => (await store.list('VirtualNode', { namespace: 'killtest' })).items.length > 0, 20_000, 5);
    leader.child.kill('SIGKILL');
    await leader.exited;
    const midway = (await store.list('VirtualNode', { namespace: 'killtest' })).items.length;

    await waitFor('converged', async () => {
      const vns = (await store.list<VirtualNode>('VirtualNode', { namespace: 'killtest' })).items;
      const vcs = (await store.list<VirtualCluster>('VirtualCluster', { namespace: 'killtest' })).items;
      return vns.length === 100 && vcs.every((v) => v.status?.nodes?.length === v.spec?.nodes && v.status?.observedGeneration === 1);
    }, 30_000, 200);
    const names = (await store.list<VirtualNode>('VirtualNode', { namespace: 'killtest' })).items.map((v) => v.metadata.name);
    assert.equal(new Set(names).size, 100);
    for (let i = 0; i < sizes.length; i++) {
      for (let j = 0; j < sizes[i]!; j++) assert.ok(names.includes(`kv${i}-${j}`), `kv${i}-${j} exists`);
    }
    assert.ok((await httpGet(other.addr!, '/readyz')).body.includes('leader'));
    console.log(`      ${midway} of 100 VirtualNodes existed when the leader was killed`);
  });

  it('SIGTERM releases the lease: the standby leads at once, not after the TTL', async () => {
    const args = ['--store', etcd.url, '--lease-ttl', '30', '--controllers', 'virtualcluster', '--log-level', 'info'];
    const a = startManager('term-a', args);
    procs.push(a);
    await waitFor('term-a leads', async () => a.addr && (await httpGet(a.addr, '/readyz')).body.includes('ready (leader)'), 30_000);
    const b = startManager('term-b', args);
    procs.push(b);
    await waitFor('term-b standby', async () => b.addr && (await httpGet(b.addr, '/readyz')).body.includes('standby'), 30_000);
    const t0 = Date.now();
    a.child.kill('SIGTERM');
    assert.equal(await a.exited, 0);
    await waitFor('term-b leads', async () => (await httpGet(b.addr!, '/readyz')).body.includes('ready (leader)'), 10_000, 20);
    assert.ok(Date.now() - t0 < 5000, 'took over well before the 30 s TTL');
  });
});
