// What HostNetworkDriver (host-network.ts) takes: one physical node's desired taps, routes,
// nftables table and NFS exports. The driver owns these types; reconcilers/network/host-plan.ts
// computes a HostNetworkState from where every VM is, and imports them from here.

import { createHash } from 'node:crypto';
import type { NfsExport } from '../nfs/ganesha-config.js';

export interface TapSpec {
  name: string;
  vm: string;
  mac: string;
  gateway: string;
  /** The tap's own (host side) MAC: the same for every tap of a VC on every node. */
  gatewayMac: string;
  ip: string;
}

/** Read-only: the plans of every node share one object per remote route (the driver keeps each one's batch line). */
export interface RouteSpec {
  /** `a.b.c.d/32` (a VM), or a VC subnet `a.b.c.d/nn` through the node holding most of its VMs */
  readonly dest: string;
  readonly dev?: string;
  readonly via?: string;
}

export interface HostNetworkState {
  taps: TapSpec[];
  routes: RouteSpec[];
  /** The complete `nft -f` input that replaces our table atomically. */
  nftRuleset: string;
  /** The rule comments the loaded table must show (checked after each load). */
  nftRuleComments: string[];
  /** What this node's NFS server must export (sorted by pseudo path). */
  nfsExports: NfsExport[];
}

/** Our nftables table (`inet virtualinux`): the only one the driver touches. */
export const NFT_TABLE = 'virtualinux';

/**
 * The regular chain of the table holding the anti-spoofing rules of the node's taps for a hook,
 * jumped to first from the hook's base chain: one VM's rules are read by listing it (hasVm), not
 * the whole table with every VC's isolation rules (hack/bench-scale 10,000: 5,000 rules parsed
 * per VM start).
 */
export function antispoofChain(hook: 'forward' | 'input'): string {
  return `antispoof_${hook}`;
}

/** A deterministic interface name of at most 15 bytes (IFNAMSIZ - 1): `vt` and 10 hex digits. */
export function tapName(vmKey: string): string {
  return `vt${createHash('sha256').update(vmKey).digest('hex').slice(0, 10)}`;
}
