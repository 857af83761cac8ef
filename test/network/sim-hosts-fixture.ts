// A manager running virtualcluster and network/hosts over SIMULATED hosts (drivers/transport/sim-*.ts:
// route tables as state, no packet moves) on the embedded store, with the helpers the sim network
// tests share: a VM by name, binding one to a node, waiting for a node's routes.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../api/store/open-store.js';
import type { Store } from '../../api/store/types.js';
import type { PhysicalNode, VirtualNode } from '../../api/types.js';
import { setCondition } from '../../api/conditions.js';
import { ControllerManager } from '../../controllers/manager.js';
import { SimWorld } from '../../drivers/transport/sim-host.js';
import { SimTransport } from '../../drivers/transport/sim-transport.js';
import type { Transport } from '../../drivers/transport/types.js';
import { AppliedNetworks, networkHostController } from '../../reconcilers/network/controller.js';
import { virtualClusterController } from '../../reconcilers/virtualcluster/controller.js';
import { eventually, physicalNode } from '../placement/fixtures.js';

export interface SimHosts {
  store: Store;
  world: SimWorld;
  /** A node's routes of our protocol: destination -> 'dev' (a local tap) or the gateway. */
  routesOf(node: string): Record<string, string | undefined>;
  vm(name: string): Promise<VirtualNode>;
  bind(name: string, node: string): Promise<void>;
  expectRoutes(node: string, want: Record<string, string>, what: string): Promise<void>;
  close(): Promise<void>;
}

/** Ready sim PhysicalNodes `nodes` ([name, address]); `wrap` may stand between the controller and a node's transport. */
export async function startSimHosts(prefix: string, nodes: readonly (readonly [string, string])[], wrap?: (node: string, t: Transport) => Transport): Promise<SimHosts> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const url = `file:${join(dir, 'store.db')}`;
  const store = await openStore(url, {});
  const world = new SimWorld();
  for (const [name, address] of nodes) {
    const pn = await store.create<PhysicalNode>({ ...physicalNode(name, 8, 8192), spec: { ...physicalNode(name, 8, 8192).spec!, address } });
    await store.updateStatus<PhysicalNode>({ ...pn, status: { conditions: setCondition(undefined, { type: 'Ready', status: 'True', reason: 'Probed', message: '' }, 0) } });
  }
  const transports = {
    get: (pn: PhysicalNode): Transport => {
      const t = new SimTransport(world.host(pn.metadata.name, { cores: 8, memoryMiB: 8192, storageRoot: '/san' }));
      return wrap ? wrap(pn.metadata.name, t) : t;
    },
  };
  const mgr = new ControllerManager({
    store: await openStore(url, {}),
    specs: (cache) => [virtualClusterController(), networkHostController(cache, { transports, resyncMs: 600_000 }, new AppliedNetworks())],
    identity: 'test', leaderElection: false, eventCleanupMs: 0,
  });
  await mgr.start();
  const routesOf = (node: string) => Object.fromEntries([...world.hosts.get(node)?.net.routes.values() ?? []]
    .filter((r) => r.protocol === '188').map((r) => [r.dst, r.dev ? 'dev' : r.gateway]));
  const vm = (name: string) => store.get<VirtualNode>({ kind: 'VirtualNode', name, namespace: 'default' });
  return {
    store, world, routesOf, vm,
    async bind(name, node) {
      const v = await vm(name);
      await store.update<VirtualNode>({ ...v, spec: { ...v.spec!, physicalNode: node } });
    },
    async expectRoutes(node, want, what) {
      await eventually(async () => (JSON.stringify(routesOf(node)) === JSON.stringify(want) ? true : undefined), 20_000, `${what} (${node} has ${JSON.stringify(routesOf(node))})`);
    },
    async close() {
      await mgr.stop();
      await mgr.store.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
