// Deterministic addresses of a VC's nodes inside its subnet (routed networking, paper 4.1):
// the first host address (.1 in a /24) is the gateway each physical host answers as; node i gets
// the (i+2)-th host address, so `<vc>-0` is 10.10.1.2 in 10.10.1.0/24. Pure; the network issue
// owns this module.

export interface Cidr {
  /** The network address as an unsigned 32-bit number. */
  network: number;
  prefix: number;
}

export function parseCidr(cidr: string): Cidr {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr.trim());
  if (!m) throw new Error(`"${cidr}" is not an IPv4 CIDR such as 10.10.1.0/24`);
  const octets = m.slice(1, 5).map(Number);
  const prefix = Number(m[5]);
  if (octets.some((o) => o > 255) || prefix > 30) {
    throw new Error(`"${cidr}" is not a usable IPv4 subnet (octets 0-255, prefix at most /30)`);
  }
  const addr = octets.reduce((a, o) => a * 256 + o, 0);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { network: (addr & mask) >>> 0, prefix };
}

export function formatIpv4(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

/** Hosts usable for nodes: all host addresses minus the gateway (and network/broadcast). */
export function nodeCapacity(cidr: string): number {
  const { prefix } = parseCidr(cidr);
  return 2 ** (32 - prefix) - 3;
}

export function gatewayAddress(cidr: string): string {
  return formatIpv4(parseCidr(cidr).network + 1);
}

export function nodeAddress(cidr: string, index: number): string {
  const c = parseCidr(cidr);
  if (!Number.isInteger(index) || index < 0 || index >= nodeCapacity(cidr)) {
    throw new Error(`subnet ${cidr} has room for ${nodeCapacity(cidr)} nodes; node index ${index} does not fit: use a larger subnet`);
  }
  return formatIpv4(c.network + index + 2);
}

export function clusterAddresses(cidr: string, nodes: number): string[] {
  return Array.from({ length: nodes }, (_, i) => nodeAddress(cidr, i));
}
