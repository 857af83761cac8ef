// Deterministic addresses of a VC's nodes inside its subnet (routed networking, paper 4.1):
// the first host address (.1 in a /24) is the gateway each physical host answers as (it sits on
// every tap of the VC); node i gets the (i+2)-th host address, so `<vc>-0` is 10.10.1.2 in
// 10.10.1.0/24. Stable across suspend, resume, remap and migration because it depends only on
// the subnet and the index. Pure.

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
