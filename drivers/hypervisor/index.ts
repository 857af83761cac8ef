// Makes the hypervisor driver for a physical node (spec.hypervisor), the way drivers/storage/index.ts
// makes storage drivers: one switch that must cover every HypervisorKind (the `never` check below
// fails to compile when a kind is added to the CRD and types.ts without a case here).
//
// `xen`: XenDriver (xen-driver.ts) with xl on the node, run for real on full testbed nodes
// (test/hypervisor/xen-driver.full.test.ts: the conformance suite on two Xen 4.17 dom0s).

import type { Transport } from '../transport/types.js';
import { QemuDriver } from './qemu-driver.js';
import { XenDriver } from './xen-driver.js';
import { SimHypervisorDriver } from './sim-driver.js';
import { HypervisorError, type HypervisorDriver, type HypervisorKind } from './types.js';

/** What every driver needs about its node; per-kind settings beside. */
export interface HypervisorDriverOptions {
  transport: Transport;
  /** The node's directory for per-domain run files. */
  runRoot: string;
  /** The address other nodes reach this node at for live migration. */
  migrationAddress: string;
  /** QEMU only: KVM, TCG, or probe for KVM (default). */
  accel?: 'auto' | 'kvm' | 'tcg';
}

/** Every kind this factory knows, in the CRD's order (PhysicalNode spec.hypervisor). */
export const HYPERVISOR_KINDS: readonly HypervisorKind[] = ['qemu', 'xen', 'sim'];

export function createHypervisorDriver(kind: HypervisorKind, opts: HypervisorDriverOptions): HypervisorDriver {
  switch (kind) {
    case 'qemu':
      return new QemuDriver({ transport: opts.transport, runRoot: opts.runRoot, migrationAddress: opts.migrationAddress, accel: opts.accel ?? 'auto' });
    case 'xen':
      return new XenDriver({ transport: opts.transport, runRoot: opts.runRoot, migrationAddress: opts.migrationAddress });
    case 'sim': // simulation only (benchmarks): needs spec.transport sim
      return new SimHypervisorDriver(opts.transport);
    default: {
      const unknown: never = kind;
      throw new HypervisorError(`unknown hypervisor ${JSON.stringify(unknown)}`);
    }
  }
}

export * from './types.js';
