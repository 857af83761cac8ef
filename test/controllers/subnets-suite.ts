// The network/subnets controller on a real store (run on both backends by subnets.sqlite.test.ts
// and subnets.etcd.test.ts): VCs created together, and by two managers racing on one store, get
// distinct subnets; a duplicate stored before reservations existed is reported; deletion and a
// spec change free a subnet. The managers run the real controller over their own informer caches.

import assert from 'node:assert/strict';
import type { Store } from '../../api/store/types.js';
import type { ApiObject, EventObject, VirtualCluster } from '../../api/types.js';
import { getCondition } from '../../api/conditions.js';
import { ControllerManager } from '../../controllers/manager.js';
import { silentLogger } from '../../controllers/log.js';
import { networkControllers } from '../../reconcilers/network/controller.js';
import { virtualCluster, waitFor } from './helpers.js';

export interface SubnetsBackend {
  /** A store of its own (an empty key space) for one test. */
  open(): Promise<Store>;
  /** Another connection to the same store (as a second vc-manager process would have). */
  connect(store: Store): Promise<Store>;
  /** Closes what open() gave, and removes it. */
  close(store: Store): Promise<void>;
}

const NS = 'default';
const ref = (name: string) => ({ kind: 'VirtualCluster', namespace: NS, name });

/** A manager running only network/subnets (the real controller and its workers) on `store`. */
async function subnetManager(store: Store, identity: string): Promise<ControllerManager> {
  const m = new ControllerManager({
    store, identity, leaderElection: false, log: silentLogger(), cacheKinds: ['PhysicalNode'],
    specs: (cache) => networkControllers(cache, { transports: { get: () => { throw new Error('network/subnets needs no transport'); } } })
      .filter((s) => s.name === 'network/subnets'),
  });
  await m.start();
  await waitFor(`${identity} ready`, () => m.isReady());
  return m;
}

/** Creates the VCs in batches of 100 (as `vcctl apply` does), all batches at once. */
async function createTogether(store: Store, vcs: ApiObject[]): Promise<void> {
  const batches: ApiObject[][] = [];
  for (let i = 0; i < vcs.length; i += 100) batches.push(vcs.slice(i, i + 100));
  await Promise.all(batches.map((b) => store.batch(b.map((object) => ({ op: 'create' as const, object })))));
}

async function listVcs(store: Store): Promise<VirtualCluster[]> {
  return (await store.list<VirtualCluster>('VirtualCluster', { namespace: NS })).items;
}

/** Waits until each named VC has a subnet or a NetworkReady condition that says why not. */
async function settled(store: Store, names: string[], timeoutMs = 60_000): Promise<Map<string, VirtualCluster>> {
  return waitFor(`${names.length} VCs with a subnet or a reason`, async () => {
    const by = new Map((await listVcs(store)).map((v) => [v.metadata.name, v]));
    const done = names.every((n) => by.get(n)?.status?.subnet || getCondition(by.get(n)?.status?.conditions, 'NetworkReady'));
    return done ? by : undefined;
  }, timeoutMs, 100);
}

function assertDistinct(vcs: VirtualCluster[]): void {
  const byNet = new Map<string, string[]>();
  for (const v of vcs) {
    const s = v.status?.subnet;
    assert.ok(s, `${v.metadata.name} has no subnet: ${JSON.stringify(v.status?.conditions)}`);
    byNet.set(s, [...(byNet.get(s) ?? []), v.metadata.name]);
  }
  const dups = [...byNet].filter(([, names]) => names.length > 1);
  assert.deepEqual(dups.map(([s, names]) => `${s}: ${names.length} VCs (${names.slice(0, 4).join(', ')})`), [], 'every VC has a subnet of its own');
}

async function warningEvents(store: Store, vc: string, reason: string): Promise<EventObject[]> {
  return (await store.list<EventObject>('Event', { namespace: NS })).items
    .filter((e) => e.spec?.involvedObject.name === vc && e.spec.type === 'Warning' && e.spec.reason === reason);
}

const vcNamed = (name: string, subnet?: string): VirtualCluster => {
  const vc = virtualCluster(name, 1, NS);
  if (subnet) vc.spec!.network = { subnet };
  return vc;
};

export function describeSubnets(backendName: string, backend: SubnetsBackend): void {
  describe(`network/subnets on ${backendName}: race-free subnet reservations`, function () {
    this.timeout(180_000);
    let store: Store;
    const managers: ControllerManager[] = [];
    const connections: Store[] = [];

    beforeEach(async () => {
      store = await backend.open();
    });
    afterEach(async () => {
      await Promise.all(managers.splice(0).map((m) => m.stop()));
      await Promise.all(connections.splice(0).map((c) => c.close()));
      await backend.close(store);
    });
    const connection = async () => {
      const c = await backend.connect(store);
      connections.push(c);
      return c;
    };

    it('two VCs created together while the manager runs get different subnets, also after a restart', async () => {
      managers.push(await subnetManager(store, 'm1'));
      await createTogether(store, [vcNamed('a'), vcNamed('b')]);
      const by = await settled(store, ['a', 'b']);
      assertDistinct([by.get('a')!, by.get('b')!]);
      assert.deepEqual([by.get('a')!.status!.subnet, by.get('b')!.status!.subnet].sort(), ['10.200.0.0/24', '10.200.1.0/24']);

      await managers.pop()!.stop();
      managers.push(await subnetManager(store, 'm1-again'));
      await createTogether(store, [vcNamed('c')]);
      const after = await settled(store, ['a', 'b', 'c']);
      assert.equal(after.get('a')!.status!.subnet, by.get('a')!.status!.subnet, 'a keeps its subnet');
      assert.equal(after.get('b')!.status!.subnet, by.get('b')!.status!.subnet, 'b keeps its subnet');
      assertDistinct([...after.values()]);
    });

    it('200 VCs created together get 200 different subnets', async () => {
      managers.push(await subnetManager(store, 'm1'));
      const names = Array.from({ length: 200 }, (_, i) => `vc-${i}`);
      await createTogether(store, names.map((n) => vcNamed(n)));
      const by = await settled(store, names, 120_000);
      assertDistinct([...by.values()]);
    });

    it('two managers on one store allocating at once never hand out one subnet twice', async () => {
      managers.push(await subnetManager(await connection(), 'left'), await subnetManager(await connection(), 'right'));
      const names = Array.from({ length: 100 }, (_, i) => `race-${i}`);
      // Both managers see every VC and reconcile it; a few ask for the same subnet by spec.
      await createTogether(store, [...names.map((n) => vcNamed(n)), vcNamed('spec-1', '10.200.7.0/24'), vcNamed('spec-2', '10.200.7.0/24')]);
      const by = await settled(store, [...names, 'spec-1', 'spec-2'], 120_000);
      assertDistinct(names.map((n) => by.get(n)!));
      const specs = ['spec-1', 'spec-2'].map((n) => by.get(n)!);
      const holders = specs.filter((v) => v.status?.subnet === '10.200.7.0/24');
      assert.equal(holders.length, 1, 'exactly one of the two VCs asking for 10.200.7.0/24 holds it');
      assert.ok(!names.some((n) => by.get(n)!.status!.subnet === '10.200.7.0/24'), 'no allocation takes a subnet a spec asks for');
      const loser = specs.find((v) => v !== holders[0])!;
      const cond = await waitFor('the other reported', async () => {
        const c = getCondition((await store.get<VirtualCluster>(ref(loser.metadata.name))).status?.conditions, 'NetworkReady');
        return c?.reason === 'SubnetConflict' ? c : undefined;
      });
      assert.equal(cond.status, 'False');
      assert.match(cond.message, new RegExp(`spec.network.subnet 10.200.7.0/24 overlaps 10.200.7.0/24 of VirtualCluster ${NS}/${holders[0]!.metadata.name}`));
      // Each manager's Event recorder writes at most 5 Events a second (burst 25), in order: the
      // 100 SubnetAllocated Events of this race come first, so the Warning may take ~40 s to land.
      await waitFor('a Warning Event on the VC in conflict', async () => (await warningEvents(store, loser.metadata.name, 'SubnetConflict')).length > 0, 120_000, 250);
    });

    it('a duplicate stored before subnets were reserved is reported on the newer VC, with Warning Events', async () => {
      // What an old manager left: two VCs with the same status.subnet (create keeps a given status).
      await store.create({ ...vcNamed('old'), status: { subnet: '10.200.0.0/24' } });
      await store.create({ ...vcNamed('twin'), status: { subnet: '10.200.0.0/24' } });
      await store.create({ ...vcNamed('fine'), status: { subnet: '10.200.3.0/24' } });
      managers.push(await subnetManager(store, 'm1'));
      const cond = await waitFor('SubnetConflict on twin', async () => {
        const c = getCondition((await store.get<VirtualCluster>(ref('twin'))).status?.conditions, 'NetworkReady');
        return c?.reason === 'SubnetConflict' ? c : undefined;
      });
      assert.equal(cond.status, 'False');
      assert.match(cond.message, /status\.subnet 10\.200\.0\.0\/24 is a duplicate: it overlaps 10\.200\.0\.0\/24 of VirtualCluster default\/old/);
      const ev = await waitFor('Warning events', async () => {
        const [t, o] = [await warningEvents(store, 'twin', 'SubnetConflict'), await warningEvents(store, 'old', 'SubnetConflict')];
        return t.length > 0 && o.length > 0 ? { t, o } : undefined;
      });
      assert.match(ev.o[0]!.spec!.message, /VirtualCluster default\/twin also asks for 10\.200\.0\.0\/24/);
      const old = await store.get<VirtualCluster>(ref('old'));
      assert.equal(old.status?.subnet, '10.200.0.0/24', 'the older VC keeps its subnet');
      assert.notEqual(getCondition(old.status?.conditions, 'NetworkReady')?.reason, 'SubnetConflict');
      assert.equal((await store.get<VirtualCluster>(ref('fine'))).status?.subnet, '10.200.3.0/24', 'a VC without a duplicate keeps its subnet');
      // A new VC does not get the duplicated subnet, nor the other taken ones.
      await store.create(vcNamed('new'));
      const got = await settled(store, ['new']);
      assert.equal(got.get('new')!.status?.subnet, '10.200.1.0/24');

      // When the holder goes, the duplicate becomes the twin's own (its VMs keep their addresses).
      await store.delete(ref('old'));
      await waitFor('twin holds its subnet', async () => {
        const t = await store.get<VirtualCluster>(ref('twin'));
        const c = getCondition(t.status?.conditions, 'NetworkReady');
        return t.status?.subnet === '10.200.0.0/24' && c && c.reason !== 'SubnetConflict';
      }, 30_000);
    });

    it('a deleted VC frees its subnet, and a changed spec.network.subnet frees the old one', async () => {
      managers.push(await subnetManager(store, 'm1'));
      await createTogether(store, [vcNamed('a'), vcNamed('b'), vcNamed('c')]);
      const by = await settled(store, ['a', 'b', 'c']);
      assertDistinct([...by.values()]);
      const freed = by.get('a')!.status!.subnet!;
      await store.delete(ref('a'));
      await store.create(vcNamed('d'));
      const d = await settled(store, ['d']);
      assert.equal(d.get('d')!.status?.subnet, freed, 'the lowest free subnet is the one a held');

      // b moves to a subnet of its own choosing; its old one is free for the next VC.
      const b = await store.get<VirtualCluster>(ref('b'));
      const old = b.status!.subnet!;
      await store.update({ ...b, spec: { ...b.spec!, network: { subnet: '10.99.0.0/24' } } });
      await waitFor('b on 10.99.0.0/24', async () => (await store.get<VirtualCluster>(ref('b'))).status?.subnet === '10.99.0.0/24');
      await store.create(vcNamed('e'));
      const e = await settled(store, ['e']);
      assert.equal(e.get('e')!.status?.subnet, old, 'b\'s old subnet is free again');
      assertDistinct(await listVcs(store));
    });

    it('a VC deleted while no manager ran frees its subnet at the next allocation', async () => {
      const m = await subnetManager(store, 'm1');
      managers.push(m);
      await createTogether(store, [vcNamed('a'), vcNamed('b')]);
      const by = await settled(store, ['a', 'b']);
      await managers.pop()!.stop();
      await store.delete(ref(by.get('a')!.status!.subnet === '10.200.0.0/24' ? 'a' : 'b'));
      managers.push(await subnetManager(store, 'm2'));
      await store.create(vcNamed('c'));
      const c = await settled(store, ['c']);
      assert.equal(c.get('c')!.status?.subnet, '10.200.0.0/24');
    });
  });
}
