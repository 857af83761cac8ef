// SubnetAllocator on both real stores: allocators with their own locks, on their own connections
// to one store (as two vc-managers would be), reserving at once never both win a subnet, and the
// ledger always equals the VCs' status.subnet. Also: the ledger a store from before reservations
// starts with, and that VMs of a VC in SubnetConflict get no network.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { API_VERSION, type ApiObject, type VirtualCluster, type VirtualNode } from '../../api/types.js';
import type { ObjectRef, Store } from '../../api/store/types.js';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import { EtcdStore } from '../../api/store/etcd-store.js';
import { startEtcd, type EtcdHarness } from '../../hack/lib/etcd-harness.js';
import type { CacheReader } from '../../controllers/types.js';
import {
  GROUP_MAX, SUBNET_LEDGER_KIND, SUBNET_LEDGER_NAME, SubnetAllocator, describeConflict, type ReserveResult, type SubnetLedger,
} from '../../reconcilers/network/subnet-allocator.js';
import { observedVmNetworks } from '../../reconcilers/network/controller.js';
import { overlaps, parseCidr } from '../../reconcilers/network/cidr.js';

const NS = 'lab';
/** No cache at all: every decision has to come from the store. */
const noCache: CacheReader = { get: () => undefined, list: () => [] };
const ref = (name: string): ObjectRef => ({ kind: 'VirtualCluster', namespace: NS, name });
const vc = (name: string, subnet?: string): VirtualCluster => ({
  apiVersion: API_VERSION, kind: 'VirtualCluster', metadata: { name, namespace: NS },
  spec: {
    template: 't', nodes: 1, node: { vcpus: 1, memoryMiB: 256, diskGiB: 1, swapMiB: 0 },
    placement: { strategy: 'Block', mode: 'Lazy' }, state: 'Running', ...(subnet ? { network: { subnet } } : {}),
  },
});
const pool = parseCidr('10.200.0.0/16');

async function ledgerOf(store: Store): Promise<SubnetLedger | undefined> {
  return store.tryGet<SubnetLedger>({ kind: SUBNET_LEDGER_KIND, name: SUBNET_LEDGER_NAME });
}

/** The invariant: entries do not overlap, and each is exactly its VC's status.subnet. */
async function assertLedgerMatches(store: Store): Promise<void> {
  const entries = (await ledgerOf(store))?.spec?.entries ?? [];
  for (let i = 0; i < entries.length; i++) {
    for (let j = i + 1; j < entries.length; j++) {
      assert.ok(!overlaps(parseCidr(entries[i]!.subnet), parseCidr(entries[j]!.subnet)), `${entries[i]!.name} and ${entries[j]!.name} overlap`);
    }
  }
  const vcs = (await store.list<VirtualCluster>('VirtualCluster')).items;
  const held = new Map(entries.map((e) => [e.uid, e.subnet]));
  for (const v of vcs) assert.equal(v.status?.subnet, held.get(v.metadata.uid!), `${v.metadata.name}: status.subnet is its ledger entry`);
}

/**
 * The store with a random pause of up to 3 ms before and after each read and write, so that two
 * allocators in one process interleave between their reads and their write as two processes would
 * (an in-process SQLite call otherwise completes without letting the other side in).
 */
function jittered(store: Store): Store {
  const pause = () => new Promise((r) => setTimeout(r, Math.random() * 3));
  return new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function' || !['get', 'tryGet', 'list', 'batch'].includes(String(prop))) return typeof v === 'function' ? v.bind(target) : v;
      return async (...args: unknown[]) => {
        await pause();
        const out = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        await pause();
        return out;
      };
    },
  });
}

/** The store, counting its batch calls (each is one ledger write with its status writes). */
function countingBatches(store: Store): { store: Store; batches: () => number } {
  let n = 0;
  const counting = new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return prop === 'batch' ? (...args: unknown[]) => { n++; return (v as (...x: unknown[]) => unknown).apply(target, args); } : v.bind(target);
    },
  });
  return { store: counting, batches: () => n };
}

interface Backend {
  /** Two connections to one fresh store; close() ends both and removes it. */
  open(): Promise<{ a: Store; b: Store; close(): Promise<void> }>;
}

function describeAllocator(name: string, backend: Backend): void {
  describe(`SubnetAllocator on ${name}`, function () {
    this.timeout(120_000);
    let a: Store;
    let b: Store;
    let close: () => Promise<void>;
    beforeEach(async () => {
      ({ a, b, close } = await backend.open());
    });
    afterEach(async () => {
      await close();
    });

    it('two allocators on two connections, each reserving every VC at once, never both win a subnet', async () => {
      const names = Array.from({ length: 60 }, (_, i) => `v${i}`);
      await a.batch([...names.map((n) => vc(n)), vc('s1', '10.50.2.0/23'), vc('s2', '10.50.3.0/24')].map((object) => ({ op: 'create' as const, object })));
      const left = new SubnetAllocator(pool, 24);
      const right = new SubnetAllocator(pool, 24);
      const all = [...names, 's1', 's2'];
      // Left goes first to last, right last to first: they race on different VCs and on the same.
      const results = await Promise.all([
        ...all.map((n) => left.reserve({ store: jittered(a), cache: noCache }, ref(n), [])),
        ...[...all].reverse().map((n) => right.reserve({ store: jittered(b), cache: noCache }, ref(n), [])),
      ]);
      assert.ok(results.every((r) => r.kind !== 'exhausted' && r.kind !== 'gone'));
      const vcs = new Map((await a.list<VirtualCluster>('VirtualCluster')).items.map((v) => [v.metadata.name, v]));
      const subnets = names.map((n) => vcs.get(n)!.status?.subnet);
      assert.ok(subnets.every(Boolean), 'every VC has a subnet');
      assert.equal(new Set(subnets).size, names.length, 'all different');
      // s1 (10.50.2.0/23) and s2 (10.50.3.0/24) overlap: exactly one holds its subnet.
      const s = [vcs.get('s1')!, vcs.get('s2')!];
      assert.equal(s.filter((v) => v.status?.subnet).length, 1, JSON.stringify(s.map((v) => v.status)));
      const conflicts = results.filter((r): r is Extract<ReserveResult, { kind: 'conflict' }> => r.kind === 'conflict');
      assert.ok(conflicts.length >= 1 && conflicts.every((c) => c.vc.metadata.name === (vcs.get('s1')!.status?.subnet ? 's2' : 's1')));
      await assertLedgerMatches(a);
    });

    it('reservations asked at once are decided together: a few batches for 70 VCs, not one each', async () => {
      const names = Array.from({ length: 70 }, (_, i) => `g${i}`);
      await a.batch(names.map((n) => ({ op: 'create' as const, object: vc(n) })));
      const { store: counting, batches } = countingBatches(a);
      const al = new SubnetAllocator(pool, 24);
      const results = await Promise.all(names.map((n) => al.reserve({ store: counting, cache: noCache }, ref(n), [])));
      assert.ok(results.every((r) => r.kind === 'reserved' && r.allocated), JSON.stringify(results.map((r) => r.kind)));
      // 70 VCs in groups of GROUP_MAX (32): 3 batches, one more if a group had to be decided again.
      assert.ok(batches() <= Math.ceil(names.length / GROUP_MAX) + 1, `${batches()} batches for ${names.length} VCs`);
      const subnets = (await a.list<VirtualCluster>('VirtualCluster')).items.map((v) => v.status?.subnet);
      assert.equal(new Set(subnets).size, names.length, 'all different');
      await assertLedgerMatches(a);
    });

    it('releases asked at once are written together: one ledger write for 30 VCs, and a re-created name keeps nothing of the old', async () => {
      const names = Array.from({ length: 40 }, (_, i) => `r${i}`);
      await a.batch(names.map((n) => ({ op: 'create' as const, object: vc(n) })));
      const al = new SubnetAllocator(pool, 24);
      await Promise.all(names.map((n) => al.reserve({ store: a, cache: noCache }, ref(n), [])));
      const before = new Map((await a.list<VirtualCluster>('VirtualCluster')).items.map((v) => [v.metadata.name, v.status!.subnet!]));
      const gone = names.slice(0, 30);
      for (const n of gone) await a.delete(ref(n));
      await a.create(vc('r0')); // the same name again: a new uid, no entry yet
      const { store: counting, batches } = countingBatches(a);
      const results = await Promise.all([...gone, 'r35'].map((n) => al.release({ store: counting, cache: noCache }, ref(n))));
      assert.deepEqual(results, [...gone.map((n) => [before.get(n)]), []], 'each gone VC gets its subnet back; r35 still exists');
      assert.equal(batches(), 1, `${batches()} ledger writes for ${gone.length} releases`);
      assert.deepEqual((await ledgerOf(a))?.spec?.entries.map((e) => e.name).sort(), names.slice(30).sort());
      await assertLedgerMatches(a);
      // A cache that shows a name held by another VC: that entry goes with the next release's write.
      const r36 = await a.get<VirtualCluster>(ref('r36'));
      const replaced: CacheReader = { get: <T,>(r: ObjectRef) => (r.name === 'r36' ? { ...r36, metadata: { ...r36.metadata, uid: 'another' } } as T : undefined), list: () => [] };
      await a.delete(ref('r37'));
      assert.deepEqual(await al.release({ store: a, cache: replaced }, ref('r37')), [before.get('r37')]);
      assert.deepEqual((await ledgerOf(a))?.spec?.entries.map((e) => e.name).sort(), ['r30', 'r31', 'r32', 'r33', 'r34', 'r35', 'r38', 'r39']);
    });

    it('release frees only a VC that is gone, and a spec change moves the entry in one write', async () => {
      await a.batch([vc('x'), vc('y')].map((object) => ({ op: 'create' as const, object })));
      const al = new SubnetAllocator(pool, 24);
      const ctx = { store: a, cache: noCache };
      await al.reserve(ctx, ref('x'), []);
      await al.reserve(ctx, ref('y'), []);
      assert.deepEqual(await al.release(ctx, ref('x')), [], 'x still exists: nothing is released');
      const x = await a.get<VirtualCluster>(ref('x'));
      await a.delete(ref('x'));
      // Another allocator (another manager) releases it: the entry is found in the store.
      assert.deepEqual(await new SubnetAllocator(pool, 24).release({ store: b, cache: noCache }, ref('x')), [x.status!.subnet]);
      const y = await a.get<VirtualCluster>(ref('y'));
      await a.update({ ...y, spec: { ...y.spec!, network: { subnet: '10.50.0.0/24' } } });
      const r = await al.reserve(ctx, ref('y'), []);
      assert.equal(r.kind === 'reserved' && r.subnet, '10.50.0.0/24');
      assert.deepEqual((await ledgerOf(a))?.spec?.entries.map((e) => [e.name, e.subnet]), [['y', '10.50.0.0/24']]);
      await assertLedgerMatches(a);
    });

    it('a store from before reservations: the oldest VC keeps a duplicated subnet, the other is refused', async () => {
      await a.create({ ...vc('first'), status: { subnet: '10.200.0.0/24' } });
      await new Promise((r) => setTimeout(r, 1100)); // creationTimestamp has second precision
      await a.create({ ...vc('second'), status: { subnet: '10.200.0.0/24' } });
      const al = new SubnetAllocator(pool, 24);
      const r = await al.reserve({ store: b, cache: noCache }, ref('second'), []);
      assert.equal(r.kind, 'conflict');
      const c = r as Extract<ReserveResult, { kind: 'conflict' }>;
      assert.equal(c.holder?.name, 'first');
      assert.match(describeConflict(c), /^status\.subnet 10\.200\.0\.0\/24 is a duplicate: it overlaps 10\.200\.0\.0\/24 of VirtualCluster lab\/first/);
      assert.equal((await al.reserve({ store: b, cache: noCache }, ref('first'), [])).kind, 'reserved');
      assert.deepEqual((await ledgerOf(a))?.spec?.entries.map((e) => e.name), ['first']);
      assert.equal((await a.get<VirtualCluster>(ref('second'))).status?.subnet, '10.200.0.0/24', 'a refusal writes nothing');
    });

    it('refuses a subnet that holds a physical node\'s address', async () => {
      await a.create(vc('p', '198.18.0.0/24'));
      const r = await new SubnetAllocator(pool, 24).reserve({ store: a, cache: noCache }, ref('p'), [{ node: 'n1', ip: parseCidr('198.18.0.5/32').base }]);
      assert.equal(r.kind, 'conflict');
      assert.match(describeConflict(r as Extract<ReserveResult, { kind: 'conflict' }>), /contains 198\.18\.0\.5, the address of PhysicalNode n1/);
      assert.equal(await ledgerOf(a), undefined);
    });
  });
}

describeAllocator('sqlite', {
  async open() {
    const dir = mkdtempSync(join(tmpdir(), 'vl-subnets-'));
    const a = new SqliteStore(join(dir, 'store.db'));
    const b = new SqliteStore(join(dir, 'store.db'));
    return { a, b, async close() { await a.close(); await b.close(); rmSync(dir, { recursive: true, force: true }); } };
  },
});

let etcd: EtcdHarness | undefined;
describeAllocator('etcd', {
  async open() {
    etcd ??= await startEtcd();
    const prefix = `/alloc-${randomBytes(4).toString('hex')}`;
    const a = await EtcdStore.connect({ endpoints: etcd.endpoints, prefix });
    const b = await EtcdStore.connect({ endpoints: etcd.endpoints, prefix });
    return { a, b, async close() { await a.close(); await b.close(); } };
  },
});
after(async () => {
  await etcd?.stop();
});

describe('observedVmNetworks leaves out VCs in SubnetConflict', () => {
  const objects: ApiObject[] = [];
  const cache: CacheReader = {
    get: <T extends ApiObject>(r: ObjectRef) => objects.find((o) => o.kind === r.kind && o.metadata.name === r.name && o.metadata.namespace === r.namespace) as T | undefined,
    list: <T extends ApiObject>(kind: string) => objects.filter((o) => o.kind === kind) as T[],
  };
  const vn = (cluster: string): VirtualNode => ({
    apiVersion: API_VERSION, kind: 'VirtualNode', metadata: { name: `${cluster}-0`, namespace: NS },
    spec: { cluster, index: 0, vcpus: 1, memoryMiB: 256, physicalNode: 'n1' },
  });
  it('the holder\'s VM is routed, the duplicate\'s is not', () => {
    const conflict = { type: 'NetworkReady', status: 'False' as const, reason: 'SubnetConflict', message: 'duplicate', lastTransitionTime: '2026-01-01T00:00:00Z' };
    objects.push(
      { ...vc('holder'), metadata: { name: 'holder', namespace: NS, uid: 'h' }, status: { subnet: '10.200.0.0/24' } },
      { ...vc('twin'), metadata: { name: 'twin', namespace: NS, uid: 't' }, status: { subnet: '10.200.0.0/24', conditions: [conflict] } },
      vn('holder'), vn('twin'),
    );
    assert.deepEqual(observedVmNetworks(cache).map((v) => [v.key, v.ip]), [[`${NS}.holder-0`, '10.200.0.2']]);
  });
});
