// SIMULATION (a sim storage node, drivers/transport/sim-*.ts): the storage controller reads a VC
// and its Volumes from the shared cache when the cache is late by less than CACHE_WAIT_MS, instead
// of from the store. The manager's cache here gets every watch event LAG_MS late (a busy
// manager's event loop at 10,000 VMs lagged 1-3 s, and storage read every volume of each VC from
// the store on each pass: 22.8 reads per VM against 3.9 at 1,000, hack/bench-scale).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getCondition, setCondition } from '../../api/conditions.js';
import { openStore } from '../../api/store/open-store.js';
import type { ObjectRef, Store, WatchHandlers } from '../../api/store/types.js';
import { API_VERSION, type ApiObject, type OSTemplate, type PhysicalNode, type VirtualCluster } from '../../api/types.js';
import { silentLogger } from '../../controllers/log.js';
import { ControllerManager } from '../../controllers/manager.js';
import { TransportCache } from '../../drivers/transport/transport-for.js';
import { CACHE_WAIT_MS, storageController } from '../../reconcilers/storage/controller.js';
import { eventually } from '../placement/fixtures.js';
import { storageVc } from './storage-fixtures-objects.js';

const ROOT = '/san-storage-cache-reads';
const LAG_MS = 600;

/** `store` whose watches deliver each event LAG_MS late (in order), and which counts tryGet by kind. */
function lagging(store: Store): { store: Store; reads: Map<string, number> } {
  const reads = new Map<string, number>();
  const wrapped = new Proxy(store, {
    get(target, prop) {
      if (prop === 'watch') {
        return (kind: string, opts: unknown, h: WatchHandlers<ApiObject>) =>
          (target.watch as (k: string, o: unknown, h: WatchHandlers<ApiObject>) => unknown)(kind, opts, {
            ...h, onEvent: (ev) => { setTimeout(() => h.onEvent(ev), LAG_MS); },
          });
      }
      if (prop === 'tryGet') {
        return (ref: ObjectRef) => {
          reads.set(ref.kind, (reads.get(ref.kind) ?? 0) + 1);
          return target.tryGet(ref);
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { store: wrapped, reads };
}

describe('storage reads a lagging cache instead of the store (sim node)', function () {
  this.timeout(120_000);
  let dir: string;
  let store: Store;
  let mgr: ControllerManager;
  let reads: Map<string, number>;
  const transports = new TransportCache();

  before(async () => {
    assert.ok(LAG_MS < CACHE_WAIT_MS && LAG_MS > 200, 'the lag is within the wait, and past the 200 ms the reads waited before');
    dir = mkdtempSync(join(tmpdir(), 'vl-storage-cache-'));
    const url = `file:${join(dir, 'store.db')}`;
    store = await openStore(url, {});
    await store.create<OSTemplate>({ apiVersion: API_VERSION, kind: 'OSTemplate', metadata: { name: 'busybox' }, spec: { image: { path: `${ROOT}/templates/busybox.qcow2`, format: 'qcow2' }, revision: 1 } });
    const pn = await store.create<PhysicalNode>({
      apiVersion: API_VERSION, kind: 'PhysicalNode', metadata: { name: 'sc-sim1' },
      spec: { address: '198.18.9.41', transport: 'sim', hypervisor: 'sim', capacity: { cores: 8, memoryMiB: 8192 }, storageRoot: ROOT } as PhysicalNode['spec'],
    });
    await store.updateStatus<PhysicalNode>({ ...pn, status: { conditions: setCondition(undefined, { type: 'Ready', status: 'True', reason: 'Probed', message: '' }, 0) } });
    const lag = lagging(await openStore(url, {}));
    reads = lag.reads;
    mgr = new ControllerManager({
      store: lag.store, identity: 'sc', leaderElection: false, eventCleanupMs: 0, log: silentLogger(),
      specs: (cache) => [storageController(cache, { transports, usageIntervalMs: 600_000 })],
    });
    await mgr.start();
  });
  after(async () => {
    await mgr?.stop();
    await mgr?.store.close();
    await store?.close();
    await transports.closeAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('makes a VC\'s storage Ready reading no Volume from the store and the VC once per reconcile', async () => {
    const vc = await store.create<VirtualCluster>(storageVc('lag', 4, 'busybox', { sharedStorage: { sizeGiB: 0, filesystem: 'none' } }));
    await store.updateStatus<VirtualCluster>({ ...vc, status: { subnet: '10.10.1.0/24' } });
    await eventually(async () => (getCondition((await store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'default', name: 'lag' })).status?.conditions, 'StorageReady')?.status === 'True' ? true : undefined),
      60_000, 'StorageReady');
    const volumes = (await store.list('Volume', { namespace: 'default' })).items.length;
    assert.ok(volumes >= 9, `${volumes} volumes (original, 4 disks, swaps, config disks)`);
    // The VC: its first read, and each StorageReady write over a store read (writeConditions).
    // The Volumes: none (a new VC has no Volume to read before its first pass makes them, and
    // every later pass waits for the cache).
    const vcReads = reads.get('VirtualCluster') ?? 0;
    const volumeReads = reads.get('Volume') ?? 0;
    console.log(`      store reads: VirtualCluster ${vcReads}, Volume ${volumeReads} (${volumes} volumes)`);
    assert.equal(volumeReads, 0, 'no Volume read from the store');
    assert.ok(vcReads <= 6, `VC reads ${vcReads}: its first read, one per StorageReady write (and a Reconciling write's, under load)`);
  });
});
