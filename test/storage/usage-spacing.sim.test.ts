// SIMULATION (a sim storage node, drivers/transport/sim-*.ts): the usage upkeep of complete
// storage is spaced by the number of VirtualClusters (usageMsPerVc each) when that is longer than
// usageIntervalMs. At 2,500 VCs one refresh a minute per VC was ~42 storage passes a second, most
// of the manager once the storage was Ready (hack/bench-scale 1000:10000, session 12). Counted
// here: the sim node's `vl-sim volume usage` calls over a window after every VC is Ready.

import assert from 'node:assert/strict';
import { getCondition } from '../../api/conditions.js';
import type { Store } from '../../api/store/types.js';
import type { VirtualCluster } from '../../api/types.js';
import { eventually } from '../placement/fixtures.js';
import { storageVc } from './storage-fixtures-objects.js';
import { usageIntervalMs } from '../../reconcilers/storage/controller.js';
import { startSimStorage, type SimStorage } from './sim-storage-node.js';

const ROOT = '/san-storage-usage-spacing';
const VCS = 2;
const INTERVAL_MS = 200;
const PER_VC_MS = 1_500;
const WINDOW_MS = 6_000;

describe('storage usage upkeep spaced by the number of VCs (sim node)', function () {
  this.timeout(120_000);
  let store: Store;
  let sim: SimStorage;
  let usageCalls = 0;

  it('usageIntervalMs: the option, or the per-VC spacing times the VCs when longer', () => {
    assert.equal(usageIntervalMs({}, 10), 60_000);
    assert.equal(usageIntervalMs({}, 2_500), 500_000);
    assert.equal(usageIntervalMs({ usageIntervalMs: 1_000, usageMsPerVc: 0 }, 2_500), 1_000);
    assert.equal(usageIntervalMs({ usageIntervalMs: INTERVAL_MS, usageMsPerVc: PER_VC_MS }, VCS), 3_000);
  });

  before(async () => {
    // The sim node's usage calls counted.
    sim = await startSimStorage('us-sim1', '198.18.9.42', ROOT, (argv) => {
      if (argv[0] === 'vl-sim' && argv[1] === 'volume' && argv[2] === 'usage') usageCalls++;
    }, { usageIntervalMs: INTERVAL_MS, usageMsPerVc: PER_VC_MS });
    store = sim.store;
  });
  after(async () => {
    await sim?.stop();
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
