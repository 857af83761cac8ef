// Deterministic addresses of a VC's nodes inside its subnet (routed networking, paper 4.1):
// the first host address (.1 in a /24) is the gateway each physical host answers as (it sits on
// every tap of the VC); node i gets the (i+2)-th host address, so `<vc>-0` is 10.10.1.2 in
// 10.10.1.0/24. Stable across suspend, resume, remap and migration because it depends only on
// the subnet and the index. Pure.

import type { VirtualCluster, VirtualNode } from '../../api/types.js';
import { nthAddress, parseSubnet, size } from './cidr.js';

/** Hosts usable for nodes: all host addresses minus the gateway (and network/broadcast). */
export function nodeCapacity(cidr: string): number {
  return size(parseSubnet(cidr)) - 3;
}

export function gatewayAddress(cidr: string): string {
  return nthAddress(parseSubnet(cidr), 1);
}

export function nodeAddress(cidr: string, index: number): string {
  const c = parseSubnet(cidr);
  const capacity = size(c) - 3;
  if (!Number.isInteger(index) || index < 0 || index >= capacity) {
    throw new Error(`subnet ${cidr} has room for ${capacity} nodes; node index ${index} does not fit: use a larger subnet`);
  }
  return nthAddress(c, index + 2);
}

export function clusterAddresses(cidr: string, nodes: number): string[] {
  return Array.from({ length: nodes }, (_, i) => nodeAddress(cidr, i));
}

/**
 * The NFS pseudo path a VC's shared storage is exported at (by the node's server, ADR 0005) and
 * mounted from (by its guests, from their gateway: VC_SHARED_NFS, ADR 0002). `cluster` is
 * `<namespace>/<vc>`.
 */
export function nfsPseudoPath(cluster: string): string {
  return `/vc/${cluster}`;
}

/** A VC's subnet: the one its spec asks for, else the one the subnet controller gave it. */
export function subnetOf(vc: VirtualCluster): string | undefined {
  return vc.spec?.network?.subnet ?? vc.status?.subnet;
}

/**
 * A VM's address in its VC's subnet (the one runtime gives the guest and network routes to), or
 * undefined while the VC has no subnet yet, or when the subnet is malformed or has no room for
 * the VM's index: the subnet controller reports those on the VC, so callers just skip the VM.
 */
export function vmAddress(
  vc: VirtualCluster | undefined, vn: VirtualNode,
): { ip: string; subnet: string } | undefined {
  const subnet = vc && subnetOf(vc);
  if (!subnet || !vn.spec) return undefined;
  try {
    return { ip: nodeAddress(subnet, vn.spec.index), subnet };
  } catch {
    return undefined;
  }
}
