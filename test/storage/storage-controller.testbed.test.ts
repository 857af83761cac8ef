// The storage controller end to end through testbed nodes: real sshd in network namespaces, the
// SshTransport, the shared SAN directory every node sees, the embedded store and the manager. The
// storage work of a 3-node VC happens over SSH on the first Ready node; the result is checked on
// the SAN; deleting the VC removes everything.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import { getCondition } from '../../api/conditions.js';
import type { PhysicalNode, VirtualCluster, Volume } from '../../api/types.js';
import { ControllerManager } from '../../controllers/manager.js';
import { silentLogger } from '../../controllers/log.js';
import { vcStorageDir } from '../../drivers/storage/file-volumes.js';
import { TransportCache } from '../../drivers/transport/transport-for.js';
import { storageController } from '../../reconcilers/storage/controller.js';
import { testbedDown, testbedUp, type TestbedState } from '../../hack/lib/testbed.js';
import { waitFor } from '../controllers/helpers.js';
import { listTree, makeTemplate, qemuHolds, recordStorageReady, shOk } from './storage-fixtures.js';
import { osTemplate, storageVc } from './storage-fixtures-objects.js';

const MiB = 1024 * 1024;

describe('storage controller through testbed nodes (SSH)', function () {
  this.timeout(180_000);
  let dir: string;
  let tb: TestbedState;
  let store: SqliteStore;
  let manager: ControllerManager;
  const transports = new TransportCache();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vl-sttb-'));
    tb = await testbedUp({ nodes: 2, dir: join(dir, 'tb') });
    store = new SqliteStore(join(dir, 'store.db'), { pollIntervalMs: 10 });
    manager = new ControllerManager({
      store, identity: 'storage-tb', leaderElection: false, log: silentLogger(),
      // Usage figures every 300 ms: each refresh is a reconcile of a complete VC over SSH.
      specs: (cache) => [storageController(cache, { transports, usageIntervalMs: 300 })],
    });
    await manager.start();
  });
  after(async () => {
    await manager?.stop();
    await transports.closeAll();
    await store?.close();
    if (tb) await testbedDown(join(dir, 'tb'));
    await rm(dir, { recursive: true, force: true });
  });

  it('provisions a 3-node VC over SSH on the shared SAN and removes it on deletion', async () => {
    const docs = parseAllDocuments(await readFile(join(tb.dir, 'physicalnodes.yaml'), 'utf8')).map((d) => d.toJS() as PhysicalNode);
    for (const d of docs) {
      // Ready as the node controller would report it (that controller is tested on its own).
      await store.create({ ...d, status: { conditions: [{ type: 'Ready', status: 'True', reason: 'Probed', message: '', lastTransitionTime: new Date().toISOString() }] } });
    }
    const san = tb.sanDir;
    await shOk(['mkdir', '-p', join(san, 'templates')]);
    await makeTemplate(join(san, 'templates', 'base.qcow2'), 16 * MiB, 'qcow2');
    await store.create(osTemplate('base', join(san, 'templates', 'base.qcow2')));
    const vc = await store.create(storageVc('tb', 3, 'base'));
    await waitFor('StorageReady', async () => {
      const v = await store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'default', name: 'tb' });
      return getCondition(v.status?.conditions, 'StorageReady')?.status === 'True';
    }, 120_000);
    const vols = (await store.list<Volume>('Volume', { namespace: 'default', labelSelector: 'virtualinux.org/cluster=tb' })).items;
    assert.equal(vols.length, 11);
    const vcDir = vcStorageDir(san, 'default', 'tb', vc.metadata.uid!);
    for (const v of vols) {
      assert.ok(v.status!.path!.startsWith(vcDir), `${v.metadata.name} lives on the SAN`);
      await stat(v.status!.path!);
    }
    const disk2 = vols.find((v) => v.metadata.name === 'tb-2-disk')!;
    assert.ok(await qemuHolds({ path: disk2.status!.path!, format: 'qcow2' }, 0, 0x11), 'the snapshot shows the template');
    await waitFor('vc.json', async () => (JSON.parse(await readFile(join(vcDir, 'vc.json'), 'utf8').catch(() => '{}')) as { nodes?: unknown[] }).nodes?.length === 3);

    await store.delete({ kind: 'VirtualCluster', namespace: 'default', name: 'tb' });
    await waitFor('VC gone', async () => (await store.tryGet({ kind: 'VirtualCluster', namespace: 'default', name: 'tb' })) === undefined, 60_000);
    assert.deepEqual((await store.list<Volume>('Volume', { namespace: 'default' })).items, []);
    assert.deepEqual(await listTree(vcDir), []);
  });

  it('a 12-node VC turns StorageReady True once and keeps it through reconciles over SSH', async () => {
    // Each reconcile of a 37-volume VC used to run a command per volume at once, more sessions
    // than the node's sshd opens (MaxSessions): the refused ones failed the reconcile, which
    // set StorageReady False until the next one set it True again.
    const ref = { kind: 'VirtualCluster', namespace: 'default', name: 'wide' };
    const { seen, close } = await recordStorageReady(store, 'wide');
    try {
      await store.create(storageVc('wide', 12, 'base'));
      await waitFor('StorageReady', async () => getCondition((await store.get<VirtualCluster>(ref)).status?.conditions, 'StorageReady')?.status === 'True', 120_000);
      await new Promise((r) => setTimeout(r, 3_000)); // ten usage refreshes
    } finally {
      close();
    }
    const fromTrue = seen.slice(seen.findIndex((c) => c.status === 'True'));
    assert.deepEqual(fromTrue.filter((c) => c.status !== 'True'), [], 'StorageReady left True');
    assert.deepEqual(seen.filter((c) => c.reason === 'StorageError'), [], 'no reconcile failed');
    await store.delete(ref);
    await waitFor('VC gone', async () => (await store.tryGet(ref)) === undefined, 60_000);
  });
});
