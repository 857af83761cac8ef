// vcctl plan, cordon, uncordon and drain, run in-process against an embedded store.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openStore } from '../../api/store/open-store.js';
import { startEtcd, type EtcdHarness } from '../../hack/lib/etcd-harness.js';
import type { Store } from '../../api/store/types.js';
import type { Migration, PhysicalNode, VirtualNode } from '../../api/types.js';
import { computeAllocation } from '../../reconcilers/placement/allocation.js';
import { vcctl } from '../cli/helpers.js';
import { physicalNode, virtualCluster, virtualNode } from './fixtures.js';

const FILE = `
apiVersion: virtualinux.org/v1alpha1
kind: PhysicalNode
metadata: {name: blade3}
spec:
  address: 198.18.0.13
  ssh: {port: 22, user: root, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJDhpB1+Hg7ybdu3HNoycgxayoN/19UvnUVpuDTJrnQV"}
  capacity: {cores: 8, memoryMiB: 16384}
  hypervisor: qemu
  storageRoot: /san
---
apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: stripes}
spec:
  nodes: 4
  template: busybox
  node: {vcpus: 1, memoryMiB: 1024, diskGiB: 4, swapMiB: 0}
  placement: {strategy: Block, mode: Strict}
---
apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: tiny, namespace: lab}
spec:
  nodes: 1
  template: busybox
  node: {vcpus: 1, memoryMiB: 4096, diskGiB: 4, swapMiB: 0}
  placement: {strategy: Cyclic, mode: Lazy}
`;

async function bind(store: Store, vn: VirtualNode, node: string): Promise<void> {
  await store.create<VirtualNode>({ ...vn, spec: { ...vn.spec!, physicalNode: node } });
}

async function setAllocated(store: Store, name: string, cores: number, memoryMiB: number, vms: number): Promise<void> {
  const pn = await store.get<PhysicalNode>({ kind: 'PhysicalNode', name });
  await store.updateStatus({ ...pn, status: { ...pn.status, allocated: { cores, memoryMiB, vms } } });
}

for (const backend of ['sqlite', 'etcd'] as const) describe(`vcctl plan, cordon, uncordon, drain (${backend})`, function () {
  this.timeout(30_000);
  let dir: string;
  let url: string;
  let store: Store;
  let etcd: EtcdHarness | undefined;

  before(async () => {
    if (backend === 'etcd') etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.stop();
  });
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-placement-cli-'));
    url = backend === 'etcd'
      ? `${etcd!.url}?prefix=/t-${randomBytes(4).toString('hex')}`
      : `file:${join(dir, 'store.db')}`;
    store = await openStore(url, {});
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('plan -o json: the VCs of the file on the stored nodes (with what is bound) and the file\'s nodes; writes nothing', async () => {
    await store.create(physicalNode('blade1', 4, 8192));
    await store.create(physicalNode('blade2', 4, 8192, { unschedulable: true }));
    await store.create(physicalNode('blade10', 4, 2048));
    const other = virtualCluster('other', 2, 1, 1024);
    await bind(store, virtualNode(other, 0), 'blade1');
    await bind(store, virtualNode(other, 1), 'blade1');
    const file = join(dir, 'plan.yaml');
    writeFileSync(file, FILE);
    const before = await store.revision();

    const r = await vcctl(url, ['plan', '-f', file, '-o', 'json']);
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.stdout), {
      clusters: [
        {
          name: 'stripes', namespace: 'default', schedulable: true,
          placements: [
            { virtualNode: 'stripes-0', physicalNode: 'blade1' },
            { virtualNode: 'stripes-1', physicalNode: 'blade1' },
            { virtualNode: 'stripes-2', physicalNode: 'blade3' },
            { virtualNode: 'stripes-3', physicalNode: 'blade3' },
          ],
          reasons: { blade2: 'cordoned' },
        },
        {
          name: 'tiny', namespace: 'lab', schedulable: true,
          placements: [{ virtualNode: 'tiny-0', physicalNode: 'blade1' }],
          reasons: { blade2: 'cordoned', blade10: 'insufficient memory (free 2048 MiB, need 4096 MiB)' },
        },
      ],
    });
    assert.equal(await store.revision(), before, 'plan wrote to the store');

    const table = await vcctl(url, ['plan', '-f', file]);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /^virtualcluster\/stripes \(namespace default\): schedulable\n {2}VIRTUALNODE {2}PHYSICALNODE\n {2}stripes-0 {4}blade1\n/);
  });

  it('plan of a VC that does not fit exits 1 with the per-node reasons', async () => {
    await store.create(physicalNode('blade1', 1, 8192));
    const file = join(dir, 'big.yaml');
    writeFileSync(file, FILE.split('---')[1]!);
    const r = await vcctl(url, ['plan', '-f', file]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /virtualcluster\/stripes \(namespace default\): UNSCHEDULABLE/);
    assert.match(r.stdout, /blade1: room for 1 VM, then insufficient cores \(Strict: free 0, need 1\)/);
    const j = JSON.parse((await vcctl(url, ['plan', '-f', file, '-o', 'json'])).stdout);
    assert.deepEqual(j.clusters[0].placements, []);
    assert.equal(j.clusters[0].schedulable, false);
  });

  it('cordon and uncordon set spec.unschedulable', async () => {
    await store.create(physicalNode('blade1', 4, 8192));
    assert.deepEqual(await vcctl(url, ['cordon', 'blade1']), { code: 0, stdout: 'physicalnode/blade1 cordoned\n', stderr: '' });
    assert.equal((await store.get<PhysicalNode>({ kind: 'PhysicalNode', name: 'blade1' })).spec!.unschedulable, true);
    assert.equal((await vcctl(url, ['cordon', 'pn/blade1'])).stdout, 'physicalnode/blade1 already cordoned\n');
    assert.equal((await vcctl(url, ['uncordon', 'blade1'])).stdout, 'physicalnode/blade1 uncordoned\n');
    assert.equal((await store.get<PhysicalNode>({ kind: 'PhysicalNode', name: 'blade1' })).spec!.unschedulable, false);
    const missing = await vcctl(url, ['cordon', 'nosuch']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /physicalnode "nosuch" not found/);
    // Another kind, or not a name: a usage error that says what to write, and nothing changes.
    for (const [verb, word] of [['cordon', 'vc/blade1'], ['uncordon', 'virtualnode/blade1'], ['drain', 'vc/blade1'], ['cordon', 'pn/Blade1']]) {
      const wrong = await vcctl(url, [verb!, word!]);
      assert.equal(wrong.code, 2, `${verb} ${word}`);
      assert.match(wrong.stderr, new RegExp(`"${word}" is not a PhysicalNode: use NODE or pn/NODE`));
    }
    assert.equal((await store.get<PhysicalNode>({ kind: 'PhysicalNode', name: 'blade1' })).spec!.unschedulable, false);
    assert.equal((await vcctl(url, ['cordon', 'physicalnodes/blade1'])).stdout, 'physicalnode/blade1 cordoned\n');
  });

  it('drain cordons, re-places each VM with its VC\'s strategy and creates the Migrations, reserving their room', async () => {
    for (const n of ['blade1', 'blade2', 'blade3']) await store.create(physicalNode(n, 4, 8192));
    const a = virtualCluster('a', 3, 1, 1024, 'Cyclic', 'Strict');
    const b = virtualCluster('b', 2, 1, 1024, 'Block', 'Strict');
    await store.create(a);
    await store.create(b);
    await bind(store, virtualNode(a, 0), 'blade1');
    await bind(store, virtualNode(a, 1), 'blade2');
    await bind(store, virtualNode(a, 2), 'blade3');
    await bind(store, virtualNode(b, 0), 'blade1');
    await bind(store, virtualNode(b, 1), 'blade1');
    await setAllocated(store, 'blade1', 3, 3072, 3);
    await setAllocated(store, 'blade2', 1, 1024, 1);
    await setAllocated(store, 'blade3', 1, 1024, 1);

    const dry = await vcctl(url, ['drain', 'blade1', '--dry-run']);
    assert.equal(dry.code, 0);
    assert.equal((await store.list('Migration')).items.length, 0);

    const r = await vcctl(url, ['drain', 'blade1']);
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^physicalnode\/blade1 cordoned\n/);
    const migs = (await store.list<Migration>('Migration')).items;
    // a (Cyclic) starts at the first eligible node, blade2; b (Block) fills blade2 (2 cores left).
    assert.deepEqual(
      migs.map((m) => [m.spec!.virtualNode, m.spec!.targetNode]).sort(),
      [['a-0', 'blade2'], ['b-0', 'blade2'], ['b-1', 'blade2']],
    );
    for (const m of migs) assert.match(r.stdout, new RegExp(`migration/${m.metadata.name} created \\(virtualnode/${m.spec!.virtualNode}: blade1 -> blade2\\)`));
    assert.equal((await store.get<PhysicalNode>({ kind: 'PhysicalNode', name: 'blade1' })).spec!.unschedulable, true);
    // The reservation is what the allocation controller computes from the objects.
    const vns = (await store.list<VirtualNode>('VirtualNode')).items;
    for (const n of ['blade1', 'blade2', 'blade3']) {
      const pn = await store.get<PhysicalNode>({ kind: 'PhysicalNode', name: n });
      assert.deepEqual(pn.status!.allocated, computeAllocation(n, vns, migs), n);
    }
    assert.deepEqual((await store.get<PhysicalNode>({ kind: 'PhysicalNode', name: 'blade2' })).status!.allocated, { cores: 4, memoryMiB: 4096, vms: 4 });

    // Draining again leaves VMs with a Migration in flight alone.
    const again = await vcctl(url, ['drain', 'blade1']);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /virtualnode\/a-0 already migrating; left alone/);
    assert.equal((await store.list('Migration')).items.length, 3);

    // blade2 is full now: draining blade3 has nowhere to go, and creates nothing.
    const full = await vcctl(url, ['drain', 'blade3']);
    assert.equal(full.code, 1);
    assert.match(full.stderr, /virtualcluster default\/a: cannot place 1 VMs .*blade1: cordoned; blade2: insufficient cores \(Strict: free 0, need 1\); blade3: cordoned/);
    assert.equal((await store.list('Migration')).items.length, 3);
  });
});
