// SIMULATION ONLY (benchmarks and sim unit tests; never production, never the proof a feature
// works): the network tools of a sim host (sim-host.ts) as drivers/network/host-network.ts calls
// them: `sysctl`, `ip` (tuntap, link, addr, route with -j listings) and `nft` (-f -, -j list
// table, delete table). State only: no packet moves. Anything else exits 2 with a message naming
// the command, as a real tool would refuse an unknown form.

import type { ExecResult } from './types.js';

const ok = (stdout = ''): ExecResult => ({ code: 0, stdout, stderr: '' });
const fail = (code: number, stderr: string): ExecResult => ({ code, stdout: '', stderr });

export interface SimRoute {
  dst: string; dev?: string; gateway?: string; protocol: string;
  /** The world's slot of dst (SimNetInterner.slot): where a host's SimRouteTable keeps it. */
  slot: number;
}

/**
 * What the sim hosts of one world hold in common, kept once: every host of a bench holds a route
 * to every VM and the isolation rule of every VC (hack/bench-scale: 1,000 hosts x 10,000 VMs),
 * and as separate strings and objects per host (each comment a slice keeping its host's whole
 * ruleset text alive) that was ~2.6 MiB per host at 10,000 VMs, most of vc-manager's RSS. Routes
 * and comments are values: equal ones are one object, shared.
 */
export class SimNetInterner {
  private readonly strings = new Map<string, string>();
  private readonly routes = new Map<string, SimRoute>();
  /** The same routes by the `ip -batch` line that adds them (`route replace ...`), as sent. */
  private readonly routeLines = new Map<string, SimRoute>();
  /** A number per route destination (a slot in every host's SimRouteTable). */
  private readonly slots = new Map<string, number>();

  slot(dst: string): number {
    let i = this.slots.get(dst);
    if (i === undefined) {
      i = this.slots.size;
      this.slots.set(this.string(dst), i);
    }
    return i;
  }

  /** The one copy of `s` (a fresh flat string the first time: never a slice of a larger text). */
  string(s: string): string {
    let v = this.strings.get(s);
    if (v === undefined) {
      v = flatCopy(s);
      this.strings.set(v, v);
    }
    return v;
  }

  /**
   * The route a batch line `route replace DST proto P dev D|via V` (one blank between words: the
   * driver's batchLine) adds, or undefined for any other line. A host of a 10,000-VM bench gets a
   * line for every VC's route, ~2.5 million in all on 1,000 hosts: each known line is one lookup,
   * with no argv built (hack/bench-scale).
   */
  routeOfLine(line: string): SimRoute | undefined {
    const known = this.routeLines.get(line);
    if (known !== undefined || !line.startsWith('route replace ')) return known;
    const w = line.split(' ');
    if (w.length !== 7 || w[3] !== 'proto' || (w[5] !== 'dev' && w[5] !== 'via') || w.some((x) => x === '')) return undefined;
    const dst = w[2]!.endsWith('/32') ? w[2]!.slice(0, -3) : w[2]!;
    const r = this.route(dst, w[5] === 'dev' ? w[6] : undefined, w[5] === 'via' ? w[6] : undefined, w[4]!);
    this.routeLines.set(flatCopy(line), r);
    return r;
  }

  route(dst: string, dev: string | undefined, gateway: string | undefined, protocol: string): SimRoute {
    const key = `${dst} ${dev ?? ''} ${gateway ?? ''} ${protocol}`;
    let r = this.routes.get(key);
    if (!r) {
      r = Object.freeze({
        dst: this.string(dst), protocol: this.string(protocol), slot: this.slot(dst),
        ...(dev !== undefined ? { dev: this.string(dev) } : {}), ...(gateway !== undefined ? { gateway: this.string(gateway) } : {}),
      });
      // The key kept is a copy: built from the words of a batch line, it referred to the whole
      // batch text (every route of the node), and each node's own tap routes are new keys, so
      // every node's batch stayed alive (~360 MiB of a 10,000-VM bench-scale manager's heap).
      this.routes.set(flatCopy(key), r);
    }
    return r;
  }
}

/**
 * A string that refers to no other: V8 keeps a word cut out of a longer text (13 characters or
 * more), or a concatenation of such words, as a reference into that text, so a kept word keeps the
 * whole command input alive.
 */
export function flatCopy(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

/**
 * A host's routes by destination (a /32 without its suffix), as a Map reads them: an array indexed
 * by the world's slot of each destination, holding the shared route values (8 bytes a route, not a
 * Map entry's ~45). Listed in slot order (the order destinations were first routed in the world).
 */
export class SimRouteTable {
  private readonly bySlot: (SimRoute | undefined)[] = [];
  private count = 0;
  constructor(private readonly interner: SimNetInterner) {}

  get size(): number {
    return this.count;
  }
  get(dst: string): SimRoute | undefined {
    return this.bySlot[this.interner.slot(dst)];
  }
  has(dst: string): boolean {
    return this.get(dst) !== undefined;
  }
  set(route: SimRoute): void {
    const i = route.slot;
    while (this.bySlot.length < i) this.bySlot.push(undefined); // dense, never holey
    if (this.bySlot[i] === undefined) this.count++;
    this.bySlot[i] = route;
  }
  delete(dst: string): boolean {
    const i = this.interner.slot(dst);
    if (this.bySlot[i] === undefined) return false;
    this.bySlot[i] = undefined;
    this.count--;
    return true;
  }
  *values(): IterableIterator<SimRoute> {
    for (const r of this.bySlot) if (r !== undefined) yield r;
  }
}

/** The word after `word` in argv, if any. */
function wordAfter(args: readonly string[], word: string): string | undefined {
  const i = args.indexOf(word);
  return i >= 0 ? args[i + 1] : undefined;
}

export class SimNet {
  readonly links = new Map<string, { address?: string; up: boolean }>();
  /** Routes as `ip -j route` shows them; shared, frozen values. */
  readonly routes: SimRouteTable;
  /** The loaded tables by "family name": their rule comments. */
  readonly tables = new Map<string, string[]>();
  /** The loaded tables' chains by "family table chain": the range [from, to) of the table's comments they hold. */
  readonly chains = new Map<string, readonly [number, number]>();

  constructor(private readonly interner: SimNetInterner = new SimNetInterner()) {
    this.routes = new SimRouteTable(interner);
  }

  /** Forgets the chains of table `key` ("family name"): it was replaced or deleted. */
  private dropChains(key: string): void {
    for (const k of [...this.chains.keys()]) if (k.startsWith(`${key} `)) this.chains.delete(k);
  }

  run(argv: readonly string[], stdin: string): ExecResult {
    switch (argv[0]) {
      case 'sysctl':
        return ok();
      case 'ip':
        return this.ip(argv.slice(1), stdin);
      case 'nft':
        return this.nft(argv.slice(1), stdin);
      default:
        return fail(127, `sim host: ${argv[0]}: command not found`);
    }
  }

  private ip(a: readonly string[], stdin = ''): ExecResult {
    if (a[0] === '-batch' && a[1] === '-') {
      // one command per line; the first failure stops the batch (as ip does without -force)
      let n = 0;
      for (const line of stdin.split('\n')) {
        n++;
        const route = this.interner.routeOfLine(line);
        const r = route ? this.replaceRoute(route) : line.trim() ? this.ip(line.trim().split(/\s+/)) : ok();
        if (r.code !== 0) return fail(1, `${r.stderr}\nCommand failed -:${n}`);
      }
      return ok();
    }
    const json = a[0] === '-j';
    const args = json ? a.slice(1) : a;
    const [obj, verb] = args;
    // wordAfter, not a closure made per command: tsx wraps each closure made in a name-keeping
    // helper (__name), ~1.5 % of a 10,000-VM bench-scale manager's CPU here, once per batch line
    if (obj === 'tuntap' && verb === 'add') {
      const name = this.interner.string(wordAfter(args, 'dev')!);
      if (this.links.has(name)) return fail(1, `ioctl(TUNSETIFF): Device or resource busy`);
      this.links.set(name, { up: false });
      return ok();
    }
    if (obj === 'link' && verb === 'show' && json) {
      return ok(JSON.stringify([{ ifname: 'lo' }, ...[...this.links].map(([ifname, l]) => ({ ifname, address: l.address }))]));
    }
    if (obj === 'link' && (verb === 'set' || verb === 'del')) {
      const name = wordAfter(args, 'dev')!;
      const link = this.links.get(name);
      if (!link) return fail(1, `Cannot find device "${name}"`);
      if (verb === 'del') this.links.delete(name);
      // Interned: a word of a batch line is a slice of the whole batch text (every route of the
      // node), and a tap's address kept as such a slice kept that text alive per host (~140 KiB
      // each at 10,000 VMs, 136 MiB of vc-manager's heap: a sampled heap profile of bench-scale).
      else if (args.includes('address')) link.address = this.interner.string(args[args.indexOf('address') + 1]!);
      else if (args.includes('up')) link.up = true;
      return ok();
    }
    if (obj === 'addr' && verb === 'replace') {
      const name = wordAfter(args, 'dev')!;
      return this.links.has(name) ? ok() : fail(1, `Cannot find device "${name}"`);
    }
    if (obj === 'route') {
      const proto = args.includes('proto') ? args[args.indexOf('proto') + 1]! : 'boot';
      if (verb === 'show' && json) {
        return ok(JSON.stringify([...this.routes.values()].filter((r) => r.protocol === proto).map(({ dst, dev: d, gateway }) => ({ dst, dev: d, gateway }))));
      }
      const dst = (args[2] ?? '').replace(/\/32$/, '');
      if (verb === 'replace') {
        const via = args.includes('via') ? args[args.indexOf('via') + 1] : undefined;
        const dev = wordAfter(args, 'dev');
        if (dev === undefined && via === undefined) return fail(255, 'Command line is not complete. Try option "help"');
        return this.replaceRoute(this.interner.route(dst, dev, via, proto));
      }
      if (verb === 'del') return this.routes.delete(dst) ? ok() : fail(2, 'RTNETLINK answers: No such process');
    }
    return fail(2, `sim host: ip ${args.join(' ')}: not simulated`);
  }

  /** `ip route replace`: a route through a device needs the device. */
  private replaceRoute(route: SimRoute): ExecResult {
    if (route.dev !== undefined && !this.links.has(route.dev)) return fail(2, `Cannot find device "${route.dev}"`);
    this.routes.set(route);
    return ok();
  }

  private nft(a: readonly string[], stdin: string): ExecResult {
    if (a[0] === '-f' && a[1] === '-') {
      // The driver's ruleset: `table inet NAME`, `delete table inet NAME`, `table inet NAME { ... }`.
      const m = /^table (\w+) (\S+) \{/m.exec(stdin);
      if (!m) return fail(1, 'sim host: nft: no table definition in the ruleset');
      const key = flatCopy(`${m[1]} ${m[2]}`);
      const found = [...stdin.matchAll(/comment "([^"]*)"/g)];
      this.tables.set(key, found.map((c) => this.interner.string(c[1]!)));
      this.dropChains(key);
      // Each `chain NAME {` ... `}` block (the driver's layout: no nesting) as the range of the
      // table's comments it holds (no copy: 1,000 hosts x 5,000 rules at 10,000 VMs).
      let i = 0;
      for (const c of stdin.matchAll(/^\s*chain (\S+) \{\n[\s\S]*?^\s*\}$/gm)) {
        while (i < found.length && found[i]!.index! < c.index!) i++;
        const from = i;
        while (i < found.length && found[i]!.index! < c.index! + c[0].length) i++;
        // A copy: `key NAME` built from the match referred to the whole ruleset text (its ~5,000
        // isolation rules at 10,000 VMs), kept alive per host while the chain is.
        this.chains.set(flatCopy(`${key} ${c[1]}`), [from, i]);
      }
      return ok();
    }
    const json = a[0] === '-j';
    const args = json ? a.slice(1) : a;
    if (args[0] === 'list' && args[1] === 'chain') {
      const range = this.chains.get(`${args[2]} ${args[3]} ${args[4]}`);
      if (!range) return fail(1, `Error: No such file or directory\n${args.join(' ')}`);
      const comments = this.tables.get(`${args[2]} ${args[3]}`)!.slice(range[0], range[1]);
      return ok(JSON.stringify({ nftables: [{ chain: { family: args[2], table: args[3], name: args[4] } }, ...comments.map((comment) => ({ rule: { comment } }))] }));
    }
    if ((args[0] === 'list' || args[0] === 'delete') && args[1] === 'table') {
      const key = `${args[2]} ${args[3]}`;
      const comments = this.tables.get(key);
      if (!comments) return fail(1, `Error: Could not process rule: No such file or directory\n${args.join(' ')}`);
      if (args[0] === 'delete') {
        this.tables.delete(key);
        this.dropChains(key);
        return ok();
      }
      return ok(JSON.stringify({ nftables: [{ table: { family: args[2], name: args[3] } }, ...comments.map((comment) => ({ rule: { comment } }))] }));
    }
    return fail(1, `sim host: nft ${a.join(' ')}: not simulated`);
  }
}
