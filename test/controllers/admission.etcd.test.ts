// Admission on the server side, on a real etcd: objects written around vcctl (`etcdctl put`) are
// validated by the controller runtime before any controller acts on them. An invalid one gets
// Stalled/InvalidSpec and an Event naming the field and nothing else happens; bytes that are not
// JSON are reported and skipped, and every controller keeps working.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { EtcdStore } from '../../api/store/etcd-store.js';
import type { Condition, EventObject, VirtualCluster, VirtualNode } from '../../api/types.js';
import { ControllerManager } from '../../controllers/manager.js';
import { startEtcd, type EtcdHarness } from '../../hack/lib/etcd-harness.js';
import { placementControllers } from '../../reconcilers/placement/controller.js';
import { virtualClusterController } from '../../reconcilers/virtualcluster/controller.js';
import { physicalNode } from '../placement/fixtures.js';
import { virtualCluster, waitFor } from './helpers.js';

const PREFIX = '/admission';

describe('admission: controllers act only on objects that match their schema (real etcd, etcdctl put)', function () {
  this.timeout(90_000);
  let etcd: EtcdHarness;
  let store: EtcdStore;
  let manager: ControllerManager;
  const skipped: string[] = [];
  const etcdctl = (...args: string[]): string =>
    execFileSync('etcdctl', ['--endpoints', etcd.endpoints[0]!, ...args], { env: { ...process.env, ETCDCTL_API: '3' } }).toString();
  const stalled = async (name: string): Promise<Condition | undefined> => {
    const vc = await store.tryGet<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'adm', name });
    return vc?.status?.conditions?.find((c) => c.type === 'Stalled');
  };
  const vnsOf = async (vc: string) =>
    (await store.list<VirtualNode>('VirtualNode', { namespace: 'adm' })).items.filter((v) => v.spec?.cluster === vc);

  before(async () => {
    etcd = await startEtcd();
    store = await EtcdStore.connect({ endpoints: etcd.endpoints, prefix: PREFIX });
    store.onUndecodable = (err) => skipped.push(err.message);
    for (let i = 1; i <= 2; i++) await store.create(physicalNode(`blade${i}`, 8, 16384));
    manager = new ControllerManager({
      store, identity: 'adm', leaderElection: false, eventCleanupMs: 0,
      specs: (cache) => [virtualClusterController(), ...placementControllers(cache)],
    });
    await manager.start();
  });
  after(async () => {
    await manager?.stop();
    await store?.close();
    await etcd?.stop();
  });

  it('an invalid VirtualCluster put with etcdctl: Stalled/InvalidSpec and an Event naming spec.nodes; no VirtualNode made; fixed, it is reconciled', async () => {
    const bad = virtualCluster('bad', 2, 'adm') as unknown as { spec: Record<string, unknown>; metadata: Record<string, unknown> };
    bad.spec.nodes = 'two';
    bad.metadata.uid = '00000000-0000-4000-8000-000000000001';
    bad.metadata.generation = 1;
    bad.metadata.creationTimestamp = new Date().toISOString();
    etcdctl('put', `${PREFIX}/virtualclusters/adm/bad`, JSON.stringify(bad));
    await store.create(virtualCluster('good', 2, 'adm'));

    const c = await waitFor('Stalled on bad', async () => ((await stalled('bad'))?.status === 'True' ? stalled('bad') : undefined), 20_000);
    assert.equal(c.reason, 'InvalidSpec');
    assert.match(c.message, /spec\.nodes: must be an integer, not a string/);
    const ev = await waitFor('InvalidSpec Event', async () => {
      await manager.flushEvents();
      return (await store.list<EventObject>('Event', { namespace: 'adm' })).items
        .find((e) => e.spec?.involvedObject.name === 'bad' && e.spec.reason === 'InvalidSpec');
    }, 10_000);
    assert.equal(ev.spec?.type, 'Warning');
    assert.match(ev.spec!.message, /spec\.nodes/);
    // The valid neighbour is reconciled meanwhile; the invalid one never is.
    await waitFor('good placed', async () => (await vnsOf('good')).filter((v) => v.spec?.physicalNode).length === 2, 20_000);
    assert.equal((await vnsOf('bad')).length, 0, 'a VirtualNode was made for an invalid VC');
    const badNow = await store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'adm', name: 'bad' });
    assert.equal(badNow.status?.conditions?.filter((x) => x.type === 'Stalled').length, 1);
    assert.ok(!badNow.status?.conditions?.some((x) => x.type === 'Placed'), 'placement acted on an invalid VC');

    // Fixed through the store: reconciled, the stall withdrawn.
    await store.update({ ...badNow, spec: { ...(badNow.spec as object), nodes: 1 } } as VirtualCluster);
    await waitFor('bad reconciled', async () => (await vnsOf('bad')).length === 1 && (await stalled('bad'))?.status === 'False', 20_000);
  });

  it('bytes that are not JSON: reported (naming the key) and skipped; every controller keeps working', async () => {
    etcdctl('put', `${PREFIX}/virtualclusters/adm/garbage`, '\x01\x02not json{');
    etcdctl('put', `${PREFIX}/virtualnodes/adm/garbage-0`, '42');
    await store.create(virtualCluster('after', 1, 'adm'));
    await waitFor('after placed', async () => (await vnsOf('after')).filter((v) => v.spec?.physicalNode).length === 1, 20_000);
    assert.ok(skipped.some((m) => m.includes(`${PREFIX}/virtualclusters/adm/garbage`) && /not JSON/.test(m)), skipped.join('\n'));
    assert.ok(skipped.some((m) => m.includes(`${PREFIX}/virtualnodes/adm/garbage-0`) && /not an object/.test(m)), skipped.join('\n'));
    // A list skips them too, and a fresh manager starts and syncs over them.
    const names = (await store.list<VirtualCluster>('VirtualCluster', { namespace: 'adm' })).items.map((v) => v.metadata.name).sort();
    assert.deepEqual(names, ['after', 'bad', 'good']);
    const second = new ControllerManager({
      store, identity: 'adm2', leaderElection: false, eventCleanupMs: 0,
      specs: () => [virtualClusterController()],
    });
    await second.start();
    try {
      await second.cache.waitForSync();
      assert.equal(second.cache.list('VirtualCluster').length, 3);
    } finally {
      await second.stop();
    }
    await assert.rejects(store.get({ kind: 'VirtualCluster', namespace: 'adm', name: 'garbage' }), /virtualclusters\/adm\/garbage at revision \d+ is not JSON/);
    // Deleting the garbage is the fix, and it is seen as such.
    etcdctl('del', `${PREFIX}/virtualclusters/adm/garbage`);
    etcdctl('del', `${PREFIX}/virtualnodes/adm/garbage-0`);
  });
});
