// SIMULATION (a sim storage node, drivers/transport/sim-*.ts): the usage upkeep of complete
// storage is spaced by the number of VirtualClusters (usageMsPerVc each) when that is longer than
// usageIntervalMs. At 2,500 VCs one refresh a minute per VC was ~42 storage passes a second, most
// of the manager once the storage was Ready (hack/bench-scale 1000:10000, session 12). Counted
// here: the sim node's `vl-sim volume usage` calls over a window after every VC is Ready.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getCondition, setCondition } from '../../api/conditions.js';
import { openStore } from '../../api/store/open-store.js';
import type { Store } from '../../api/store/types.js';
import { API_VERSION, type OSTemplate, type PhysicalNode, type VirtualCluster } from '../../api/types.js';
import { silentLogger } from '../../controllers/log.js';
import { ControllerManager } from '../../controllers/manager.js';
import { TransportCache } from '../../drivers/transport/transport-for.js';
import type { Transport } from '../../drivers/transport/types.js';
import { storageController, usageIntervalMs } from '../../reconcilers/storage/controller.js';
import { eventually } from '../placement/fixtures.js';
import { storageVc } from './storage-fixtures-objects.js';

const ROOT = '/san-storage-usage-spacing';
const VCS = 2;
const INTERVAL_MS = 200;
const PER_VC_MS = 1_500;
const WINDOW_MS = 6_000;

describe('storage usage upkeep spaced by the number of VCs (sim node)', function () {
  this.timeout(120_000);
  let dir: string;
  let store: Store;
  let mgr: ControllerManager;
  const transports = new TransportCache();
  let usageCalls = 0;

  it('usageIntervalMs: the option, or the per-VC spacing times the VCs when longer', () => {
    assert.equal(usageIntervalMs({}, 10), 60_000);
    assert.equal(usageIntervalMs({}, 2_500), 500_000);
    assert.equal(usageIntervalMs({ usageIntervalMs: 1_000, usageMsPerVc: 0 }, 2_500), 1_000);
    assert.equal(usageIntervalMs({ usageIntervalMs: INTERVAL_MS, usageMsPerVc: PER_VC_MS }, VCS), 3_000);
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-storage-usage-'));
    store = await openStore(`file:${join(dir, 'store.db')}`, {});
    await store.create<OSTemplate>({ apiVersion: API_VERSION, kind: 'OSTemplate', metadata: { name: 'busybox' }, spec: { image: { path: `${ROOT}/templates/busybox.qcow2`, format: 'qcow2' }, revision: 1 } });
    const pn = await store.create<PhysicalNode>({
      apiVersion: API_VERSION, kind: 'PhysicalNode', metadata: { name: 'us-sim1' },
      spec: { address: '198.18.9.42', transport: 'sim', hypervisor: 'sim', capacity: { cores: 8, memoryMiB: 8192 }, storageRoot: ROOT } as PhysicalNode['spec'],
    });
    await store.updateStatus<PhysicalNode>({ ...pn, status: { conditions: setCondition(undefined, { type: 'Ready', status: 'True', reason: 'Probed', message: '' }, 0) } });
    // The sim node's transport, its usage calls counted.
    const counting = {
      get(node: PhysicalNode): Transport {
        const t = transports.get(node);
        return new Proxy(t, {
          get(target, prop) {
            if (prop === 'exec') {
              return (argv: readonly string[], opts?: unknown) => {
                if (argv[0] === 'vl-sim' && argv[1] === 'volume' && argv[2] === 'usage') usageCalls++;
                return (target.exec as (a: readonly string[], o?: unknown) => unknown).call(target, argv, opts);
              };
            }
            const v: unknown = Reflect.get(target, prop, target);
            return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
          },
        });
      },
    };
    mgr = new ControllerManager({
      store, identity: 'us', leaderElection: false, eventCleanupMs: 0, log: silentLogger(),
      specs: (cache) => [storageController(cache, { transports: counting, usageIntervalMs: INTERVAL_MS, usageMsPerVc: PER_VC_MS })],
    });
    await mgr.start();
  });
  after(async () => {
    await mgr?.stop();
    await store?.close();
    await transports.closeAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`refreshes each VC's usage about once per ${VCS} x ${PER_VC_MS} ms, not every ${INTERVAL_MS} ms`, async () => {
    for (let i = 0; i < VCS; i++) {
      const vc = await store.create<VirtualCluster>(storageVc(`us${i}`, 1, 'busybox', { sharedStorage: { sizeGiB: 0, filesystem: 'none' } }));
      await store.updateStatus<VirtualCluster>({ ...vc, status: { subnet: `10.10.${i + 1}.0/24` } });
    }
    const ready = async (name: string) => getCondition((await store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'default', name })).status?.conditions, 'StorageReady')?.status === 'True';
    await eventually(async () => ((await Promise.all(Array.from({ length: VCS }, (_, i) => ready(`us${i}`)))).every(Boolean) ? true : undefined), 60_000, 'StorageReady');
    const before = usageCalls;
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    const calls = usageCalls - before;
    console.log(`      usage calls in ${WINDOW_MS} ms after StorageReady: ${calls} for ${VCS} VCs`);
    // Spaced 3 s: at most 3 per VC in 6 s (one right at the window's start); every 200 ms: ~30 per VC.
    assert.ok(calls <= VCS * 3, `${calls} usage calls for ${VCS} VCs in ${WINDOW_MS} ms`);
    assert.ok(calls >= 1, 'the usage is still refreshed');
  });
});
