// vcctl migrate, suspend and resume on the embedded store: the objects they write.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../api/store/open-store.js';
import type { Store } from '../../api/store/types.js';
import { API_VERSION, type Migration, type PhysicalNode, type VirtualCluster, type VirtualNode } from '../../api/types.js';
import { vcctl } from './helpers.js';

describe('vcctl migrate, suspend, resume', () => {
  let dir: string;
  let url: string;
  let store: Store;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-rtcmd-'));
    url = `file:${join(dir, 'store.db')}`;
    store = await openStore(url);
    const pn = (name: string, hypervisor: 'qemu' | 'xen' = 'qemu'): PhysicalNode => ({
      apiVersion: API_VERSION, kind: 'PhysicalNode', metadata: { name },
      spec: { address: '198.18.0.11', ssh: { port: 22, user: 'root', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBcOJ0cW4uB0kpzZqr5SlfXbYfPaQVqz8dPs8b6zBgdQ' }, capacity: { cores: 4, memoryMiB: 8192 }, hypervisor, storageRoot: '/san' },
      status: { allocated: { cores: 1, memoryMiB: 256, vms: 1 } },
    });
    await store.create(pn('blade1'));
    await store.create(pn('blade2'));
    await store.create(pn('xen1', 'xen'));
    await store.create<VirtualCluster>({
      apiVersion: API_VERSION, kind: 'VirtualCluster', metadata: { name: 'stripes', namespace: 'default' },
      spec: { nodes: 1, template: 'busybox', node: { vcpus: 1, memoryMiB: 256, diskGiB: 1, swapMiB: 64 }, placement: { strategy: 'Block', mode: 'Strict' }, state: 'Running' },
    });
    await store.create<VirtualNode>({
      apiVersion: API_VERSION, kind: 'VirtualNode', metadata: { name: 'stripes-0', namespace: 'default' },
      spec: { cluster: 'stripes', index: 0, vcpus: 1, memoryMiB: 256, physicalNode: 'blade1' },
    });
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('migrate creates a Migration and reserves the room on the target in the same write', async () => {
    const r = await vcctl(url, ['migrate', 'vn/stripes-0', '--to', 'blade2']);
    assert.equal(r.code, 0, r.stderr);
    const name = /^migration\/(\S+) created \(virtualnode\/stripes-0 -> blade2\)\n$/.exec(r.stdout)?.[1];
    assert.ok(name, r.stdout);
    const mig = await store.get<Migration>({ kind: 'Migration', namespace: 'default', name });
    assert.deepEqual(mig.spec, { virtualNode: 'stripes-0', targetNode: 'blade2' });
    const pn = await store.get<PhysicalNode>({ kind: 'PhysicalNode', name: 'blade2' });
    assert.deepEqual(pn.status?.allocated, { cores: 2, memoryMiB: 512, vms: 2 });
  });

  it('migrate refuses unknown nodes and names, writing nothing', async () => {
    const before = (await store.list('Migration')).items.length;
    const r = await vcctl(url, ['migrate', 'vn/stripes-0', '--to', 'blade9']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /physicalnode "blade9" not found/);
    const r2 = await vcctl(url, ['migrate', 'vn/nope', '--to', 'blade2']);
    assert.match(r2.stderr, /virtualnode "nope" not found in namespace "default"/);
    const r3 = await vcctl(url, ['migrate', 'vn/stripes-0']);
    assert.notEqual(r3.code, 0);
    const r4 = await vcctl(url, ['migrate', 'vn/stripes-0', '--to', 'xen1']);
    assert.equal(r4.code, 1);
    assert.match(r4.stderr, /cannot migrate virtualnode "stripes-0" to physicalnode "xen1": hypervisor xen, the VM runs on qemu node blade1: a live migration never crosses hypervisor kinds/);
    const xen1 = await store.get<PhysicalNode>({ kind: 'PhysicalNode', name: 'xen1' });
    assert.deepEqual(xen1.status?.allocated, { cores: 1, memoryMiB: 256, vms: 1 });
    assert.equal((await store.list('Migration')).items.length, before);
  });

  it('suspend and resume set spec.state, and say so when there is nothing to do', async () => {
    const ref = { kind: 'VirtualCluster', namespace: 'default', name: 'stripes' };
    const s = await vcctl(url, ['suspend', 'vc/stripes']);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(s.stdout, 'virtualcluster/stripes suspending\n');
    assert.equal((await store.get<VirtualCluster>(ref)).spec?.state, 'Suspended');
    assert.equal((await vcctl(url, ['suspend', 'vc/stripes'])).stdout, 'virtualcluster/stripes already Suspended\n');
    const r = await vcctl(url, ['resume', 'stripes']);
    assert.equal(r.stdout, 'virtualcluster/stripes resuming\n');
    assert.equal((await store.get<VirtualCluster>(ref)).spec?.state, 'Running');
    assert.match((await vcctl(url, ['suspend', 'vc/nope'])).stderr, /virtualcluster "nope" not found/);
  });
});
