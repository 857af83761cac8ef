// SIMULATION fixture: every controller vc-manager runs, in one manager on the embedded store, over
// sim hosts (drivers/transport/sim-*.ts: no guest, disk or packet is real). Shared by the *.sim
// tests that drive the whole control plane.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getCondition } from '../../api/conditions.js';
import { openStore } from '../../api/store/open-store.js';
import type { Store } from '../../api/store/types.js';
import { API_VERSION, type OSTemplate, type PhysicalNode, type VirtualCluster } from '../../api/types.js';
import { silentLogger } from '../../controllers/log.js';
import { ControllerManager } from '../../controllers/manager.js';
import { TransportCache } from '../../drivers/transport/transport-for.js';
import { buildControllerSpecs } from '../../operator/registry.js';

export const SIM_ROOT = '/san-control-plane-sim';

/** A sim PhysicalNode (8 cores, 8 GiB) at `address` mounting `root`. */
export function simPhysicalNode(name: string, address: string, root: string): PhysicalNode {
  return {
    apiVersion: API_VERSION, kind: 'PhysicalNode', metadata: { name },
    // a sim host has no ssh section (the schema asks for one only with transport ssh)
    spec: { address, transport: 'sim', hypervisor: 'sim', capacity: { cores: 8, memoryMiB: 8192 }, storageRoot: root } as PhysicalNode['spec'],
  };
}

/** The OSTemplate `busybox`, its image under `root`. */
export function busyboxTemplate(root: string): OSTemplate {
  return { apiVersion: API_VERSION, kind: 'OSTemplate', metadata: { name: 'busybox' }, spec: { image: { path: `${root}/templates/busybox.qcow2`, format: 'qcow2' }, revision: 1 } };
}

/** A sim PhysicalNode `<prefix><i>` at 198.18.9.<i> mounting SIM_ROOT. */
export function simNode(i: number, prefix = 'cp-sim'): PhysicalNode {
  return simPhysicalNode(`${prefix}${i}`, `198.18.9.${i}`, SIM_ROOT);
}

export function simVc(ns: string, name: string, nodes: number, subnet: string, strategy: 'Block' | 'Cyclic'): VirtualCluster {
  return {
    apiVersion: API_VERSION, kind: 'VirtualCluster', metadata: { name, namespace: ns },
    spec: {
      nodes, template: 'busybox', node: { vcpus: 1, memoryMiB: 256, diskGiB: 1, swapMiB: 64 },
      placement: { strategy, mode: 'Strict' }, state: 'Running',
      sharedStorage: { sizeGiB: 0, filesystem: 'none' }, network: { subnet },
    },
  };
}

export interface SimControlPlane {
  /** The test's own connection to the store. */
  store: Store;
  /** Whether VirtualCluster `name` of namespace `ns` is Ready. */
  ready(ns: string, name: string): Promise<boolean>;
  stop(): Promise<void>;
}

/** A store with the busybox OSTemplate and `nodes`, and one manager (no leader election) running every controller on it. */
export async function startSimControlPlane(identity: string, nodes: PhysicalNode[]): Promise<SimControlPlane> {
  const dir = mkdtempSync(join(tmpdir(), `vl-${identity}-`));
  const url = `file:${join(dir, 'store.db')}`;
  const transports = new TransportCache();
  let store: Store | undefined;
  let mgr: ControllerManager | undefined;
  const stop = async (): Promise<void> => {
    await mgr?.stop();
    await mgr?.store.close();
    await store?.close();
    await transports.closeAll();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    store = await openStore(url, {});
    await store.create<OSTemplate>(busyboxTemplate(SIM_ROOT));
    for (const n of nodes) await store.create(n);
    mgr = new ControllerManager({
      store: await openStore(url, {}),
      specs: (cache) => buildControllerSpecs({ cache, identity, log: silentLogger(), transports, nodeProbeIntervalMs: 2_000 }),
      identity, leaderElection: false, eventCleanupMs: 0,
    });
    await mgr.start();
  } catch (err) {
    await stop();
    throw err;
  }
  const s = store;
  return {
    store: s,
    ready: async (ns, name) => getCondition((await s.get<VirtualCluster>({ kind: 'VirtualCluster', name, namespace: ns })).status?.conditions, 'Ready')?.status === 'True',
    stop,
  };
}
