// A fenced node that comes back (power restored, link healed) may still hold domains of VMs that
// now run elsewhere, or their leftovers. Before the node controller reports it Ready again, every
// domain on it is destroyed (its VMs with highAvailability none start again from their disks once
// the node is uncordoned). Wired into the node controller as its `beforeReady` hook.

import { isConditionTrue } from '../../api/conditions.js';
import type { PhysicalNode } from '../../api/types.js';
import { HypervisorDrivers, type TransportSource } from '../runtime/hosts.js';
import { FENCED } from './plan.js';

export type BeforeReady = (node: PhysicalNode) => Promise<string[]>;

/** Whether the node must be cleaned before it may be Ready: it is Fenced. */
export function needsStaleDomainStop(node: PhysicalNode): boolean {
  return isConditionTrue(node.status?.conditions, FENCED);
}

/** The hook: destroys every domain on a fenced node; returns their names. Throws when it cannot. */
export function staleDomainStopper(transports: TransportSource, drivers = new HypervisorDrivers(transports)): BeforeReady {
  return async (node) => {
    if (!needsStaleDomainStop(node)) return [];
    const driver = drivers.get(node);
    const stopped: string[] = [];
    for (const d of await driver.list()) {
      await driver.destroy(d.name);
      stopped.push(d.name);
    }
    return stopped;
  };
}
