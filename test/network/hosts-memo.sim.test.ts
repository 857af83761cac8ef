// SIMULATION (sim hosts, drivers/transport/sim-*.ts: route tables as state, no packet moves): the
// network/hosts controller in a real manager on the embedded store keeps every VM's network
// between the changes its watches let through (hack/bench-scale: recomputing it on every VM
// status write made each node reconcile a pass over every VM). What must still reach every node:
// a VM bound, moved, its VC's subnet changed, a VM deleted; a status write changes nothing.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../api/store/open-store.js';
import type { Store } from '../../api/store/types.js';
import type { PhysicalNode, VirtualCluster, VirtualNode } from '../../api/types.js';
import { setCondition } from '../../api/conditions.js';
import { ControllerManager } from '../../controllers/manager.js';
import { SimWorld } from '../../drivers/transport/sim-host.js';
import { SimTransport } from '../../drivers/transport/sim-transport.js';
import { AppliedNetworks, networkHostController } from '../../reconcilers/network/controller.js';
import { virtualClusterController } from '../../reconcilers/virtualcluster/controller.js';
import { eventually, physicalNode, virtualCluster } from '../placement/fixtures.js';

describe('network/hosts keeps VM networks between relevant changes (sim hosts)', function () {
  this.timeout(60_000);
  let dir: string;
  let store: Store;
  let mgr: ControllerManager;
  const world = new SimWorld();
  const routesOf = (node: string) => Object.fromEntries([...world.hosts.get(node)?.net.routes.values() ?? []]
    .filter((r) => r.protocol === '188').map((r) => [r.dst, r.dev ? 'dev' : r.gateway]));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-net-memo-'));
    const url = `file:${join(dir, 'store.db')}`;
    store = await openStore(url, {});
    for (const [name, address] of [['n1', '198.18.5.1'], ['n2', '198.18.5.2']] as const) {
      const pn = await store.create<PhysicalNode>({ ...physicalNode(name, 8, 8192), spec: { ...physicalNode(name, 8, 8192).spec!, address } });
      await store.updateStatus<PhysicalNode>({ ...pn, status: { conditions: setCondition(undefined, { type: 'Ready', status: 'True', reason: 'Probed', message: '' }, 0) } });
    }
    const transports = { get: (pn: PhysicalNode) => new SimTransport(world.host(pn.metadata.name, { cores: 8, memoryMiB: 8192, storageRoot: '/san' })) };
    mgr = new ControllerManager({
      store: await openStore(url, {}),
      specs: (cache) => [virtualClusterController(), networkHostController(cache, { transports, resyncMs: 600_000 }, new AppliedNetworks())],
      identity: 'test', leaderElection: false, eventCleanupMs: 0,
    });
    await mgr.start();
  });
  after(async () => {
    await mgr?.stop();
    await mgr?.store.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const vm = (name: string) => store.get<VirtualNode>({ kind: 'VirtualNode', name, namespace: 'default' });
  const bind = async (name: string, node: string) => {
    const v = await vm(name);
    await store.update<VirtualNode>({ ...v, spec: { ...v.spec!, physicalNode: node } });
  };
  const expect = (node: string, want: Record<string, string>, what: string) =>
    eventually(async () => (JSON.stringify(routesOf(node)) === JSON.stringify(want) ? true : undefined), 20_000, `${what} (${node} has ${JSON.stringify(routesOf(node))})`);

  it('routes follow bindings, moves, a subnet change and deletions; a status write moves nothing', async () => {
    const vc = await store.create<VirtualCluster>({ ...virtualCluster('m', 2, 1, 256), spec: { ...virtualCluster('m', 2, 1, 256).spec!, network: { subnet: '10.77.0.0/29' } } });
    await eventually(async () => ((await store.list('VirtualNode')).items.length === 2 ? true : undefined), 20_000, 'the VMs');
    await bind('m-0', 'n1');
    await expect('n1', { '10.77.0.2': 'dev' }, 'm-0 routed on its node');
    await expect('n2', { '10.77.0.2': '198.18.5.1' }, 'm-0 routed to its node');
    await bind('m-1', 'n2');
    await expect('n1', { '10.77.0.2': 'dev', '10.77.0.3': '198.18.5.2' }, 'm-1 routed to its node');
    // A status write the network does not read: nothing changes (and nothing is undone).
    const v0 = await vm('m-0');
    await store.updateStatus<VirtualNode>({ ...v0, status: { ...v0.status, message: 'busy elsewhere' } });
    // The VM moves (its host changes): both nodes follow.
    const v1 = await vm('m-1');
    await store.updateStatus<VirtualNode>({ ...v1, status: { ...v1.status, host: 'n1' } });
    await expect('n2', { '10.77.0.2': '198.18.5.1', '10.77.0.3': '198.18.5.1' }, 'm-1 moved to n1');
    await expect('n1', { '10.77.0.2': 'dev', '10.77.0.3': 'dev' }, 'm-1 local on n1');
    // The VC's subnet changes: every VM's address does.
    const cur = await store.get<VirtualCluster>({ kind: 'VirtualCluster', name: vc.metadata.name, namespace: 'default' });
    await store.update<VirtualCluster>({ ...cur, spec: { ...cur.spec!, network: { subnet: '10.78.0.0/29' } } });
    await expect('n2', { '10.78.0.2': '198.18.5.1', '10.78.0.3': '198.18.5.1' }, 'the new subnet');
    // A VM deleted (the VC scaled down): its routes go everywhere.
    const c2 = await store.get<VirtualCluster>({ kind: 'VirtualCluster', name: 'm', namespace: 'default' });
    await store.update<VirtualCluster>({ ...c2, spec: { ...c2.spec!, nodes: 1 } });
    await expect('n2', { '10.78.0.2': '198.18.5.1' }, 'm-1 gone');
    await expect('n1', { '10.78.0.2': 'dev' }, 'm-1 gone from its node');
  });
});
