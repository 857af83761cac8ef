// The runtime's view of physical nodes: one hypervisor driver per node, made by the factory in
// drivers/hypervisor/index.ts (which also says which kinds are refused and why), sharing the
// node's transport from the manager's TransportCache; and the paths the runtime derives for a
// VirtualNode. Everything derived from names and uids, so a retry finds its own earlier work.

import type { PhysicalNode, VirtualNode } from '../../api/types.js';
import type { Transport } from '../../drivers/transport/types.js';
import type { DomainInfo, HypervisorDriver } from '../../drivers/hypervisor/types.js';
import { createHypervisorDriver } from '../../drivers/hypervisor/index.js';

export const DEFAULT_RUN_ROOT = '/run/virtualinux';

export interface TransportSource {
  get(node: PhysicalNode): Transport;
}

export class HypervisorDrivers {
  private readonly drivers = new Map<string, { transport: Transport; key: string; driver: HypervisorDriver }>();
  private readonly lists = new Map<string, { startedMs: number; driver: HypervisorDriver; result: Promise<DomainInfo[]> }>();

  constructor(
    private readonly transports: TransportSource,
    private readonly accel: 'auto' | 'kvm' | 'tcg' = 'auto',
  ) {}

  /** The node's driver; rebuilt when its transport or hypervisor settings change. */
  get(node: PhysicalNode): HypervisorDriver {
    const transport = this.transports.get(node);
    const spec = node.spec!;
    const key = JSON.stringify([spec.hypervisor, spec.runRoot ?? DEFAULT_RUN_ROOT, spec.address]);
    const cur = this.drivers.get(node.metadata.name);
    if (cur && cur.transport === transport && cur.key === key) return cur.driver;
    let driver: HypervisorDriver;
    try {
      driver = createHypervisorDriver(spec.hypervisor, { transport, runRoot: spec.runRoot ?? DEFAULT_RUN_ROOT, migrationAddress: spec.address, accel: this.accel });
    } catch (e) {
      throw new Error(`PhysicalNode ${node.metadata.name}: ${(e as Error).message}`, { cause: e });
    }
    this.drivers.set(node.metadata.name, { transport, key, driver });
    return driver;
  }

  /**
   * The node's domains from a list started at most `maxAgeMs` before `nowMs` (one in flight
   * counts), else from a new one (always with 0), which later callers may share. For the pollers only (the
   * node-domains rounds list with 0 and the orphans controller takes theirs when recent): they
   * listed each node on their own, and on a full test node (a Xen dom0 under TCG) those lists were
   * most of dom0's commands (VL_TRACE_EXEC, session 18). A reconcile that acts on what it reads
   * lists for itself. A failed list is not shared after it failed.
   */
  recentList(node: PhysicalNode, maxAgeMs: number, nowMs: number = Date.now()): Promise<DomainInfo[]> {
    const driver = this.get(node);
    const name = node.metadata.name;
    const cur = this.lists.get(name);
    if (cur && cur.driver === driver && maxAgeMs > 0 && nowMs - cur.startedMs <= maxAgeMs) return cur.result;
    const result = driver.list();
    this.lists.set(name, { startedMs: nowMs, driver, result });
    result.catch(() => {
      if (this.lists.get(name)?.result === result) this.lists.delete(name);
    });
    return result;
  }
}

/** Where a VirtualNode's suspend image lives: on the shared storage root, named by its uid. */
export function savedStatePath(node: PhysicalNode, vn: VirtualNode): string {
  return `${node.spec!.storageRoot.replace(/\/+$/, '')}/runtime/${vn.metadata.namespace}/${vn.metadata.name}-${vn.metadata.uid}.vmstate`;
}
