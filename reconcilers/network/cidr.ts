// IPv4 CIDR arithmetic for VC subnets: parsing, overlap, the n-th host address, and allocation
// of a free subnet from a pool. Pure.

export interface Cidr {
  /** Network address as an unsigned 32-bit number. */
  base: number;
  prefix: number;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function parseIp(text: string): number {
  const m = IPV4.exec(text);
  if (!m) throw new Error(`"${text}" is not an IPv4 address`);
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) throw new Error(`"${text}" is not an IPv4 address`);
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Strict: `10.10.1.0/24`; host bits set is an error (a likely typo in a spec). */
export function parseCidr(text: string): Cidr {
  const c = parseCidrBits(text);
  if (c.base !== c.addr) throw new Error(`"${text}" has host bits set; did you mean ${formatIp(c.base)}/${c.prefix}?`);
  return { base: c.base, prefix: c.prefix };
}

/** Lenient: the subnet an address/prefix lies in, with room for a gateway and a node (prefix <= 30). */
export function parseSubnet(text: string): Cidr {
  const c = parseCidrBits(text.trim());
  if (c.prefix > 30) throw new Error(`"${text}" is not a usable IPv4 subnet (prefix at most /30)`);
  return { base: c.base, prefix: c.prefix };
}

/** parseCidrBits' results by text (every VM's address parsed its VC's subnet again: hack/bench-scale); dropped whole past PARSED_MAX. */
const parsed = new Map<string, Readonly<Cidr & { addr: number }>>();
const PARSED_MAX = 50_000;

function parseCidrBits(text: string): Readonly<Cidr & { addr: number }> {
  let c = parsed.get(text);
  if (c === undefined) {
    c = Object.freeze(parseCidrBitsOnce(text));
    if (parsed.size >= PARSED_MAX) parsed.clear();
    parsed.set(text, c);
  }
  return c;
}

function parseCidrBitsOnce(text: string): Cidr & { addr: number } {
  const [ip, p, extra] = text.split('/');
  const prefix = Number(p);
  if (extra !== undefined || p === undefined || !/^\d{1,2}$/.test(p) || prefix > 32) {
    throw new Error(`"${text}" is not an IPv4 CIDR (like 10.10.1.0/24)`);
  }
  let addr: number;
  try {
    addr = parseIp(ip!);
  } catch (e) {
    throw new Error(`"${text}" is not an IPv4 CIDR (like 10.10.1.0/24): ${(e as Error).message}`);
  }
  return { base: (addr & mask(prefix)) >>> 0, prefix, addr };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.base)}/${c.prefix}`;
}

export function size(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & mask(p)) >>> 0) === ((b.base & mask(p)) >>> 0);
}

export function contains(c: Cidr, ip: number): boolean {
  return ((ip & mask(c.prefix)) >>> 0) === c.base;
}

/** The i-th address of the subnet (0 = the network address). Throws past the broadcast. */
export function nthAddress(c: Cidr, i: number): string {
  if (i < 0 || i >= size(c) - 1) throw new Error(`${formatCidr(c)} has no host address number ${i}`);
  return formatIp((c.base + i) >>> 0);
}

/**
 * The first subnet of length `prefix` inside `pool` that overlaps none of `taken` (other VCs'
 * subnets and the physical network). Deterministic: the lowest free one.
 */
export function allocateSubnet(pool: Cidr, prefix: number, taken: readonly Cidr[]): Cidr | undefined {
  if (prefix < pool.prefix) throw new Error(`cannot allocate a /${prefix} from the pool ${formatCidr(pool)}`);
  const step = 2 ** (32 - prefix);
  const count = 2 ** (prefix - pool.prefix);
  for (let k = 0; k < count; k++) {
    const cand: Cidr = { base: (pool.base + k * step) >>> 0, prefix };
    if (!taken.some((t) => overlaps(t, cand))) return cand;
  }
  return undefined;
}
