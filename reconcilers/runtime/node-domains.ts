// Notices a VM whose domain died with one list per node, not one look per VM: every pollMs, each
// Ready, unfenced PhysicalNode that Running VMs are on (status.host) is listed once (the driver's
// `list`); each such VM whose domain is not running there (gone, shut off, paused) is queued for
// the runtime reconcile, which observes it itself and plans what follows (DomainDied, a restart).
// Before, every Running VM was reconciled every pollMs (two commands on its node and a status
// read each: hack/bench-scale); a Running VM is now reconciled on a change, on this, or at resync.
//
// Contract: a ControllerSpec source (controllers/types.ts `sources`). VMs with a Migration in
// flight are left to the runtime's own polling of Migrating VMs and to the migration controller.
// A node that cannot be listed (unreachable, a failing command) is skipped this round: the nodes
// controller says whether it is Ready. Rounds never overlap: the next starts pollMs after one ends.
// Each round's list of a node is left for the orphans controller to share (HypervisorDrivers.recentList).

import type { PhysicalNode, VirtualNode } from '../../api/types.js';
import type { ObjectRef } from '../../api/store/types.js';
import { isConditionTrue } from '../../api/conditions.js';
import { domainNameOf } from '../../api/names.js';
import type { CacheReader } from '../../controllers/types.js';
import type { DomainInfo } from '../../drivers/hypervisor/types.js';
import type { ObservedDomain } from './plan.js';
import type { HypervisorDrivers } from './hosts.js';

/** Nodes listed at once in a round. */
const LIST_CONCURRENCY = 16;

/** A domain's state as the runtime plans with it (undefined: no such domain). */
export function liveState(d: DomainInfo | undefined): ObservedDomain['state'] | undefined {
  if (!d) return undefined;
  switch (d.state) {
    case 'running':
    case 'migrating':
      return 'running';
    case 'paused':
      return 'paused';
    case 'incoming':
      return 'incoming';
    case 'shutoff':
      return 'shutoff';
  }
}

/** The Running VMs by the node they run on, leaving out those being migrated (`migrating`). */
export function runningByNode(cache: CacheReader, migrating: (vn: VirtualNode) => boolean): Map<string, VirtualNode[]> {
  const byNode = new Map<string, VirtualNode[]>();
  for (const vn of cache.list<VirtualNode>('VirtualNode')) {
    const host = vn.status?.host;
    if (!vn.spec || vn.status?.phase !== 'Running' || !host || vn.metadata.deletionTimestamp || migrating(vn)) continue;
    const l = byNode.get(host);
    if (l) l.push(vn);
    else byNode.set(host, [vn]);
  }
  return byNode;
}

/** One round: lists each node with Running VMs and queues those whose domain is not running there. */
export async function checkNodeDomains(cache: CacheReader, drivers: HypervisorDrivers, migrating: (vn: VirtualNode) => boolean,
  enqueue: (ref: ObjectRef) => void): Promise<void> {
  const work = [...runningByNode(cache, migrating)];
  const next = async (): Promise<void> => {
    for (let item = work.shift(); item; item = work.shift()) {
      const [host, vms] = item;
      const pn = cache.get<PhysicalNode>({ kind: 'PhysicalNode', name: host });
      if (!pn?.spec || !isConditionTrue(pn.status?.conditions, 'Ready') || isConditionTrue(pn.status?.conditions, 'Fenced')) continue;
      let listed: DomainInfo[];
      try {
        listed = await drivers.recentList(pn, 0);
      } catch {
        continue;
      }
      const byName = new Map(listed.map((d) => [d.name, d]));
      for (const vn of vms) {
        if (liveState(byName.get(domainNameOf(vn))) !== 'running') {
          enqueue({ kind: 'VirtualNode', name: vn.metadata.name, namespace: vn.metadata.namespace });
        }
      }
    }
  };
  await Promise.all(Array.from({ length: LIST_CONCURRENCY }, next));
}

/** The source (controllers/types.ts) that runs a round every pollMs until stopped. */
export function nodeDomainSource(cache: CacheReader, drivers: HypervisorDrivers, pollMs: number,
  migrating: (vn: VirtualNode) => boolean): (enqueue: (ref: ObjectRef) => void) => () => void {
  return (enqueue) => {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const round = async (): Promise<void> => {
      try {
        await checkNodeDomains(cache, drivers, migrating, (r) => { if (!stopped) enqueue(r); });
      } catch {
        // a cache or driver fault: the next round tries again
      }
      if (!stopped) timer = setTimeout(() => void round(), pollMs);
    };
    timer = setTimeout(() => void round(), pollMs);
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  };
}
