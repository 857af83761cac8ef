// A sim storage node for the storage controller's *.sim tests (drivers/transport/sim-*.ts:
// simulation only): its OSTemplate and a Ready PhysicalNode with `transport: sim`, and a
// transport source that shows every command to a counter before the sim node runs it.

import { setCondition } from '../../api/conditions.js';
import type { Store } from '../../api/store/types.js';
import type { OSTemplate, PhysicalNode } from '../../api/types.js';
import { busyboxTemplate, simPhysicalNode } from '../controllers/sim-control-plane.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../api/store/open-store.js';
import { silentLogger } from '../../controllers/log.js';
import { ControllerManager } from '../../controllers/manager.js';
import { TransportCache } from '../../drivers/transport/transport-for.js';
import { storageController, type StorageControllerOptions } from '../../reconcilers/storage/controller.js';
import type { Transport } from '../../drivers/transport/types.js';

/** The OSTemplate `busybox` under `root` and a Ready sim PhysicalNode mounting `root`. */
export async function simStorageNode(store: Store, name: string, address: string, root: string): Promise<void> {
  await store.create<OSTemplate>(busyboxTemplate(root));
  const pn = await store.create<PhysicalNode>(simPhysicalNode(name, address, root));
  await store.updateStatus<PhysicalNode>({ ...pn, status: { conditions: setCondition(undefined, { type: 'Ready', status: 'True', reason: 'Probed', message: '' }, 0) } });
}

/** `transports`, with each command's argv shown to `seen` first. */
export function countingTransports(transports: TransportCache, seen: (argv: readonly string[]) => void): { get(node: PhysicalNode): Transport } {
  return {
    get(node: PhysicalNode): Transport {
      const t = transports.get(node);
      return new Proxy(t, {
        get(target, prop) {
          if (prop === 'exec') {
            return (argv: readonly string[], opts?: unknown) => {
              seen(argv);
              return (target.exec as (a: readonly string[], o?: unknown) => unknown).call(target, argv, opts);
            };
          }
          const v: unknown = Reflect.get(target, prop, target);
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    },
  };
}

/** A store (embedded SQLite in a temporary directory) with simStorageNode, and a manager running only the storage controller over it. */
export interface SimStorage {
  store: Store;
  stop(): Promise<void>;
}

/** Starts SimStorage: the node `name` at `address` mounting `root`, every command shown to `seen`. */
export async function startSimStorage(
  name: string, address: string, root: string, seen: (argv: readonly string[]) => void,
  opts: Omit<StorageControllerOptions, 'transports'> = {},
): Promise<SimStorage> {
  const dir = mkdtempSync(join(tmpdir(), `vl-${name}-`));
  const store = await openStore(`file:${join(dir, 'store.db')}`, {});
  const transports = new TransportCache();
  await simStorageNode(store, name, address, root);
  const mgr = new ControllerManager({
    store, identity: name, leaderElection: false, eventCleanupMs: 0, log: silentLogger(),
    specs: (cache) => [storageController(cache, { ...opts, transports: countingTransports(transports, seen) })],
  });
  await mgr.start();
  return {
    store,
    async stop() {
      await mgr.stop();
      await store.close();
      await transports.closeAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
