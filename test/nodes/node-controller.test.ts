// The PhysicalNode controller in the manager, on the embedded store, against three testbed nodes
// with real sshd: all become Ready from the probe; a node whose sshd stops turns NotReady within
// the configured window and Ready again when sshd returns.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import type { EventObject, PhysicalNode } from '../../api/types.js';
import { getCondition } from '../../api/conditions.js';
import { ControllerManager } from '../../controllers/manager.js';
import { silentLogger } from '../../controllers/log.js';
import { TransportCache } from '../../drivers/transport/transport-for.js';
import { nodeController } from '../../reconcilers/nodes/controller.js';
import { startSshd, stopSshd, testbedDown, testbedUp, type TestbedState } from '../../hack/lib/testbed.js';
import { waitFor, waitForEvent } from '../controllers/helpers.js';

const INTERVAL_MS = 500;
const THRESHOLD = 2;
const PROBE_TIMEOUT_MS = 3000;
// the longest a dead node can look Ready: THRESHOLD probes, each up to its timeout, plus the interval
const WINDOW_MS = THRESHOLD * (PROBE_TIMEOUT_MS + INTERVAL_MS) + 2000;

describe('PhysicalNode controller on testbed nodes', function () {
  this.timeout(120_000);
  let dir: string;
  let tb: TestbedState;
  let store: SqliteStore;
  let manager: ControllerManager;
  const transports = new TransportCache({ ssh: { keepaliveIntervalMs: 1000, keepaliveCountMax: 2, connectTimeoutMs: 2000 } });

  const node = (name: string) => store.get<PhysicalNode>({ kind: 'PhysicalNode', name });
  const ready = async (name: string) => getCondition((await node(name)).status?.conditions, 'Ready');

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vl-nodes-'));
    tb = await testbedUp({ nodes: 3, dir: join(dir, 'tb') });
    store = new SqliteStore(join(dir, 'store.db'), { pollIntervalMs: 10 });
    manager = new ControllerManager({
      store,
      identity: 'nodes-test',
      leaderElection: false,
      log: silentLogger(),
      specs: [nodeController({ transports, intervalMs: INTERVAL_MS, failureThreshold: THRESHOLD, probeTimeoutMs: PROBE_TIMEOUT_MS })],
    });
    await manager.start();
  });
  after(async () => {
    await manager?.stop();
    await transports.closeAll();
    await store?.close();
    await testbedDown(join(dir, 'tb'));
    await rm(dir, { recursive: true, force: true });
  });

  it('makes the three nodes of physicalnodes.yaml Ready from a real probe', async () => {
    const docs = parseAllDocuments(await readFile(join(tb.dir, 'physicalnodes.yaml'), 'utf8')).map((d) => d.toJS() as PhysicalNode);
    assert.equal(docs.length, 3);
    // blade3 claims more than the machine has: a Warning Event, and still Ready
    docs[2]!.spec!.capacity = { cores: 4096, memoryMiB: 16 * 1024 * 1024 }; // the schema's maximum, far above this machine
    for (const d of docs) await store.create(d);
    for (const d of docs) {
      await waitFor(`${d.metadata.name} Ready`, async () => (await ready(d.metadata.name))?.status === 'True', 30_000);
      const n = await node(d.metadata.name);
      assert.equal(getCondition(n.status?.conditions, 'Ready')?.reason, 'Probed');
      assert.match(n.status?.hypervisorVersion ?? '', /^QEMU emulator version/);
      assert.ok((n.status?.observed?.cores ?? 0) >= 1);
      assert.ok((n.status?.observed?.memoryMiB ?? 0) > 100);
    }
    await waitFor('capacity Event for blade3', async () => {
      await manager.flushEvents();
      const evs = (await store.list<EventObject>('Event')).items;
      return evs.find((e) => e.spec?.involvedObject.name === 'blade3' && e.spec.reason === 'CapacityExceedsHost' && e.spec.type === 'Warning');
    });
  });

  it('a node whose sshd stops turns NotReady within the window, and Ready when it returns', async () => {
    const t0 = Date.now();
    await stopSshd(tb, 'blade2');
    await waitFor('blade2 NotReady', async () => (await ready('blade2'))?.status === 'False', WINDOW_MS + 5000, 100);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed <= WINDOW_MS, `NotReady after ${elapsed} ms, window ${WINDOW_MS} ms`);
    assert.equal((await ready('blade2'))?.reason, 'Unreachable');
    assert.equal((await ready('blade1'))?.status, 'True');
    assert.equal((await ready('blade3'))?.status, 'True');
    await startSshd(tb, 'blade2');
    await waitFor('blade2 Ready again', async () => (await ready('blade2'))?.status === 'True', WINDOW_MS + 5000, 100);
    assert.equal((await ready('blade2'))?.reason, 'Probed');
    await waitForEvent(store, manager, 'blade2', (e) => e.type === 'Warning' && e.reason === 'Unreachable', 'a Warning Event when it went NotReady');
    await waitForEvent(store, manager, 'blade2', (e) => e.type === 'Normal' && e.reason === 'NodeReady' && e.count >= 2, 'NodeReady at first and again on return');
  });
});
