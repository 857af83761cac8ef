// Crash injection: the storage work of a VC's creation and of its deletion is cut at every step
// (the k-th command on the storage node fails and so does everything after it, as when the
// manager dies there), then a fresh reconciler (a restarted manager) runs to completion. After
// each run nothing may leak: the files on the storage root are exactly the Ready Volume objects
// (plus vc.json), no temporaries, no Volume object without its file; after deletion, nothing.

import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { getCondition } from '../../api/conditions.js';
import type { ObjectRef } from '../../api/store/types.js';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import type { ApiObject, OSTemplate, PhysicalNode, VirtualCluster, Volume } from '../../api/types.js';
import { silentLogger } from '../../controllers/log.js';
import type { CacheReader, ReconcileContext } from '../../controllers/types.js';
import { vcStorageDir } from '../../drivers/storage/file-volumes.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { TransportError } from '../../drivers/transport/types.js';
import { StorageReconciler } from '../../reconcilers/storage/controller.js';
import { FaultyTransport, listTree, makeTemplate, makeTempDir } from './storage-fixtures.js';
import { osTemplate, storageNode, storageVc } from './storage-fixtures-objects.js';

const MiB = 1024 * 1024;

describe('storage crash injection: every step of VC creation and deletion', function () {
  this.timeout(600_000);
  let dir: string;
  let root: string;
  let store: SqliteStore;
  let node: PhysicalNode;
  let template: OSTemplate;
  const real = new LocalTransport({ host: 'storage' });

  before(async () => {
    dir = await makeTempDir('vl-crash-');
    root = join(dir, 'san');
    await mkdir(join(root, 'templates'), { recursive: true });
    await makeTemplate(join(root, 'templates', 'base.qcow2'), 8 * MiB, 'qcow2');
    store = new SqliteStore(join(dir, 'store.db'), { pollIntervalMs: 10 });
    node = storageNode('blade1', root);
    template = await store.create(osTemplate('base', join(root, 'templates', 'base.qcow2')));
  });
  after(async () => {
    await store?.close();
    await real.close();
    await rm(dir, { recursive: true, force: true });
  });

  function ctxFor(): ReconcileContext {
    const cache: CacheReader = {
      get: <T extends ApiObject>(ref: ObjectRef) => (ref.kind === 'OSTemplate' && ref.name === 'base' ? (template as unknown as T) : undefined),
      list: <T extends ApiObject>(kind: string) => (kind === 'PhysicalNode' ? [node as unknown as T] : []),
    };
    return { store, cache, events: { record: () => undefined }, log: silentLogger(), signal: new AbortController().signal };
  }

  /** One reconcile through a transport dying at `dieAt`; returns the steps taken and whether it threw. */
  async function reconcileOnce(ref: ObjectRef, dieAt: number): Promise<{ steps: number; threw: boolean }> {
    // The dieAt-th operation fails and so does every one after it (Infinity: never).
    const t = new FaultyTransport(real, (step) => (step >= dieAt ? new TransportError(`injected crash at step ${step}`) : undefined), 'dying');
    const r = new StorageReconciler({ transports: { get: () => t }, usageIntervalMs: 3_600_000 });
    try {
      await r.reconcile(ref, ctxFor());
      return { steps: t.steps, threw: false };
    } catch {
      return { steps: t.steps, threw: true };
    }
  }

  async function converge(ref: ObjectRef): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const r = await reconcileOnce(ref, Infinity);
      const vc = await store.tryGet<VirtualCluster>(ref);
      if (!r.threw && (!vc || getCondition(vc.status?.conditions, 'StorageReady')?.status === 'True')) return;
    }
    throw new Error(`${ref.name} did not converge`);
  }

  async function checkNoLeak(vc: VirtualCluster, when: string): Promise<void> {
    const vols = (await store.list<Volume>('Volume', { namespace: 'default', labelSelector: `virtualinux.org/cluster=${vc.metadata.name}` })).items;
    const files = await listTree(vcStorageDir(root, 'default', vc.metadata.name, vc.metadata.uid!));
    const gone = !(await store.tryGet({ kind: 'VirtualCluster', namespace: 'default', name: vc.metadata.name }));
    if (gone) {
      assert.deepEqual(vols, [], `${when}: Volume objects left after deletion`);
      assert.deepEqual(files, [], `${when}: files left after deletion`);
      return;
    }
    const names = vols.map((v) => v.metadata.name).sort();
    assert.deepEqual(names, [`${vc.metadata.name}-0-config`, `${vc.metadata.name}-0-disk`, `${vc.metadata.name}-0-swap`, `${vc.metadata.name}-original`, `${vc.metadata.name}-shared`], when);
    assert.ok(vols.every((v) => v.status?.phase === 'Ready'), `${when}: a volume is not Ready`);
    assert.deepEqual(files.filter((f) => !f.includes('/')), [...names, 'vc.json'].sort(), `${when}: files differ from the Volume objects`);
  }

  it('creation and deletion converge without leaks whichever step is cut', async () => {
    // Count the steps of an uninterrupted creation and deletion first.
    const probe = await store.create(storageVc('probe', 1, 'base'));
    const ref = (n: string): ObjectRef => ({ kind: 'VirtualCluster', namespace: 'default', name: n });
    let createSteps = 0;
    for (let i = 0; i < 3; i++) createSteps += (await reconcileOnce(ref('probe'), Infinity)).steps;
    await checkNoLeak(probe, 'probe');
    await store.delete(ref('probe'));
    const deleteSteps = (await reconcileOnce(ref('probe'), Infinity)).steps;
    await checkNoLeak(probe, 'probe deleted');
    assert.ok(createSteps > 10 && deleteSteps > 3, `steps: ${createSteps} create, ${deleteSteps} delete`);

    let cut = 0;
    for (let k = 1; k <= createSteps; k++) {
      const name = `c${k}`;
      const vc = await store.create(storageVc(name, 1, 'base'));
      const r = await reconcileOnce(ref(name), k);
      if (r.threw) cut++;
      await converge(ref(name));
      await checkNoLeak(vc, `creation cut at step ${k}`);
      await store.delete(ref(name));
      if (k <= deleteSteps) {
        await reconcileOnce(ref(name), k);
        await converge(ref(name));
      } else {
        await converge(ref(name));
      }
      await checkNoLeak(vc, `deletion cut at step ${k}`);
      assert.equal(await store.tryGet(ref(name)), undefined, `${name} still exists`);
    }
    assert.ok(cut >= createSteps / 3, `only ${cut} of ${createSteps} runs were cut`);
    assert.deepEqual((await listTree(join(root, 'vcs'))).filter((f) => f.split('/').length > 1), []);
  });
});
