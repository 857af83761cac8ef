// SIMULATION ONLY. A sim host is a physical node that exists only inside this process (vc-manager
// or a test): a PhysicalNode with `spec.transport: sim` is reached through a SimTransport
// (sim-transport.ts) that hands each command to the SimHost of that name in the process-wide
// SimWorld. It is for benchmarks of the control plane at a scale no testbed reaches (hack/bench-scale:
// a thousand hosts) and for unit tests of fault handling; it is never for production and never the
// proof that a feature works on real hosts (README "Simulated hosts").
//
// What it answers, by argv (every call goes through the transport, so a host that stops answering
// stops answering all of them):
// - file tools on its own files and on the storage root it shares with every sim host naming the
//   same one (sim-fs.ts): cat, test, rm, mkdir, stat, tail; writeFile;
// - the network tools of drivers/network (sim-net.ts): sysctl, ip, nft;
// - `sh -c SCRIPT sh ARGS...` for scripts registered with registerSimScript (the node probe);
//   other scripts exit 127;
// - `vl-sim domain ...`: VMs for the sim hypervisor driver (drivers/hypervisor/sim-driver.ts):
//   a start delay, a boot delay until the console prints VIRTUALINUX-READY and the guest agent
//   answers, shutdown, suspend to a file on the storage root and resume from it (on any sim host),
//   live migration whose time grows with memory, cancel;
// - `vl-sim volume ...`: volumes for the sim storage driver (drivers/storage/sim-driver.ts), each
//   operation taking time; content is kept as a digest and a size, never the bytes.
// Faults (injected by tests or a benchmark): `unreachable` (every command, new or in flight, is
// never answered: the caller's deadline ends it with TransportTimeoutError, as for a node cut off),
// `failMigrations` (the next N outgoing migrations fail half-way; the domain keeps running on the
// source, nothing is left on the target), `killDomain` (a VM dies unexpectedly).

import { posix } from 'node:path';
import { SimFs } from './sim-fs.js';
import { SimNet, SimNetInterner } from './sim-net.js';
import type { ExecResult } from './types.js';

/** How a sim host behaves; every figure in ms unless named otherwise. */
export interface SimBehaviour {
  /** One command's round trip (an SSH exec on a LAN). */
  rttMs: number;
  /** Commands at once per host; the rest queue (as the SSH transport's pool). */
  maxConcurrent: number;
  /** From `create` until the domain runs (the hypervisor's process start). */
  startMs: number;
  /** From the start until the guest is up (console READY line, agent answers). */
  bootMs: number;
  /** The guest's power-off after an ACPI request. */
  shutdownMs: number;
  /** One volume operation (snapshot, swap, config, remove). */
  storageOpMs: number;
  /** Copying a template into a VC's original volume. */
  originalMs: number;
  /** Live migration: fixed cost plus memory at this rate. */
  migrationFixedMs: number;
  migrationBytesPerSec: number;
  /** Suspend writes, resume reads memory at this rate. */
  suspendBytesPerSec: number;
}

export const DEFAULT_SIM_BEHAVIOUR: SimBehaviour = {
  rttMs: 1,
  maxConcurrent: 16,
  startMs: 100,
  bootMs: 3_000,
  shutdownMs: 1_000,
  storageOpMs: 20,
  originalMs: 500,
  migrationFixedMs: 150,
  migrationBytesPerSec: 1 << 30,
  suspendBytesPerSec: 1 << 30,
};

/** What a host is: its machine and the storage root it mounts (from its PhysicalNode). */
export interface SimHostInit {
  cores: number;
  memoryMiB: number;
  storageRoot: string;
  /** spec.sanDevice: the probe reports it as present with this many bytes. */
  sanDevice?: string;
}

export interface SimDomain {
  name: string;
  state: 'running' | 'paused' | 'migrating' | 'incoming' | 'shutoff';
  vcpus: number;
  memoryMiB: number;
  ip?: string;
  /** When the guest is (or was) up: the READY line and the agent's answer from then on. */
  readyAtMs: number;
  /** When this boot started (uptime). */
  bootedAtMs: number;
  /** An outgoing migration in progress: cancel() ends it. */
  migration?: { cancel: () => void };
}

export type SimScriptHandler = (host: SimHost, args: readonly string[]) => ExecResult;
const SCRIPTS = new Map<string, SimScriptHandler>();

/** Lets a sim host answer `sh -c SCRIPT sh ARGS...` for this exact script (the module owning it registers it). */
export function registerSimScript(script: string, handler: SimScriptHandler): void {
  SCRIPTS.set(script, handler);
}

export class SimAbortedError extends Error {}

const ok = (stdout = ''): ExecResult => ({ code: 0, stdout, stderr: '' });
const fail = (code: number, stderr: string): ExecResult => ({ code, stdout: '', stderr });

/** Waits ms, or rejects when the signal fires. */
export function simSleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(new SimAbortedError('aborted'));
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(t);
      reject(new SimAbortedError('aborted'));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export class SimHost {
  readonly fs = new SimFs();
  readonly net: SimNet;
  readonly domains = new Map<string, SimDomain>();
  /** Fault: the host answers nothing (commands hang until their deadline). */
  unreachable = false;
  /** Fault: this many next outgoing migrations fail half-way. */
  failMigrations = 0;
  /** Commands this host has answered (for tests and the benchmark). */
  commands = 0;
  private readonly unreachableWaiters = new Set<() => void>();

  constructor(
    readonly name: string,
    readonly world: SimWorld,
    public init: SimHostInit,
  ) {
    this.net = new SimNet(world.netInterner);
  }

  get behaviour(): SimBehaviour {
    return this.world.behaviour;
  }

  /** Injects or clears the unreachable fault; clearing it does not answer what was already lost. */
  setUnreachable(on: boolean): void {
    this.unreachable = on;
    if (on) for (const w of this.unreachableWaiters) w();
  }

  /** Fault: the domain's process dies (the guest is gone; its run files stay, as a crash leaves them). */
  killDomain(name: string): boolean {
    const d = this.domains.get(name);
    if (!d) return false;
    d.state = 'shutoff';
    d.migration?.cancel();
    return true;
  }

  private fsFor(path: string): SimFs {
    const root = SimFs.norm(this.init.storageRoot);
    const p = SimFs.norm(path);
    return p === root || p.startsWith(`${root}/`) ? this.world.san(root) : this.fs;
  }

  writeFile(path: string, data: Buffer): void {
    this.fsFor(path).write(path, data);
  }

  /**
   * Runs one command. Never resolves while the host is unreachable (before or after the work): the
   * signal (the transport's deadline) ends the wait with SimAbortedError.
   */
  async run(argv: readonly string[], stdin: Buffer, signal?: AbortSignal): Promise<ExecResult> {
    await this.silence(signal);
    const r = await this.dispatch(argv, stdin, signal);
    await this.silence(signal);
    this.commands++;
    return r;
  }

  /** While unreachable: waits for the signal (a node cut off never answers). */
  async silence(signal?: AbortSignal): Promise<void> {
    if (!this.unreachable) return;
    await new Promise<never>((_, reject) => {
      if (signal?.aborted) return reject(new SimAbortedError('aborted'));
      signal?.addEventListener('abort', () => reject(new SimAbortedError('aborted')), { once: true });
    });
  }

  private async dispatch(argv: readonly string[], stdin: Buffer, signal?: AbortSignal): Promise<ExecResult> {
    const [cmd, ...a] = argv;
    const args = a.filter((x) => x !== '--');
    switch (cmd) {
      case 'cat': {
        const data = this.fsFor(args[0]!).read(args[0]!);
        return data ? ok(data.toString('utf8')) : fail(1, `cat: ${args[0]}: No such file or directory`);
      }
      case 'test': {
        const [flag, path] = args;
        const fs = this.fsFor(path!);
        const yes = flag === '-d' ? fs.isDir(path!) : flag === '-f' ? fs.read(path!) !== undefined : fs.exists(path!);
        return yes ? ok() : fail(1, '');
      }
      case 'mkdir':
        for (const p of args.filter((x) => !x.startsWith('-'))) this.fsFor(p).mkdirp(p);
        return ok();
      case 'rm':
        for (const p of args.filter((x) => !x.startsWith('-'))) this.fsFor(p).remove(p);
        return ok();
      case 'stat': {
        const path = args[args.length - 1]!;
        const data = this.fsFor(path).read(path);
        if (!data) return fail(1, `stat: cannot statx '${path}': No such file or directory`);
        const size = volumeSize(data);
        return ok(args[1] === '%b %B' ? `${Math.ceil(size / 512)} 512\n` : `${size}\n`);
      }
      case 'tail': {
        const path = args[args.length - 1]!;
        const data = this.fsFor(path).read(path);
        if (!data) return fail(1, `tail: cannot open '${path}' for reading: No such file or directory`);
        const from = Math.max(0, Number((args[1] ?? '+1').replace('+', '')) - 1);
        return ok(data.subarray(from).toString('utf8'));
      }
      case 'kill':
        return fail(1, `kill: (${args[args.length - 1]}) - No such process`);
      case 'sysctl':
      case 'ip':
      case 'nft':
        return this.net.run(argv, stdin.toString('utf8'));
      case 'sh': {
        const script = a[0] === '-c' ? a[1] : undefined;
        const handler = script !== undefined ? SCRIPTS.get(script) : undefined;
        if (!handler) return fail(127, `sim host: this script is not simulated: ${(script ?? a.join(' ')).split('\n')[0]}`);
        return handler(this, a.slice(3));
      }
      case 'vl-sim':
        await simSleep(0, signal);
        if (a[0] === 'domain') return this.domainCommand(a.slice(1), signal);
        if (a[0] === 'volume') return this.volumeCommand(a.slice(1), stdin, signal);
        return fail(2, `vl-sim: unknown command ${a[0]}`);
      default:
        return fail(127, `sim host: ${cmd}: command not found`);
    }
  }

  /** The node probe's answer (reconcilers/nodes/probe.ts's output format). */
  probeOutput(storageRoot: string, sanDevice: string): ExecResult {
    const lines = [`cores ${this.init.cores}`, `memmib ${this.init.memoryMiB}`, 'hypervisor sim 1 (simulated host, not for production)'];
    lines.push(`storage ${this.fsFor(storageRoot) === this.fs ? 'missing' : 'ok'}`);
    if (sanDevice) lines.push(this.init.sanDevice === sanDevice ? `san ${64 << 30}` : 'san missing');
    return ok(`${lines.join('\n')}\n`);
  }

  // ---- domains -----------------------------------------------------------------------------

  domainInfo(d: SimDomain): object {
    return { name: d.name, state: d.state, detail: `sim-${d.state}`, vcpus: d.vcpus, memoryMiB: d.memoryMiB };
  }

  private usedMemoryMiB(): number {
    let n = 0;
    for (const d of this.domains.values()) if (d.state !== 'shutoff') n += d.memoryMiB;
    return n;
  }

  private async domainCommand(a: readonly string[], signal?: AbortSignal): Promise<ExecResult> {
    const b = this.behaviour;
    const now = Date.now();
    const [op, x, y, z] = a;
    const d = x !== undefined ? this.domains.get(x) : undefined;
    switch (op) {
      case 'list':
        return ok(JSON.stringify([...this.domains.values()].map((v) => this.domainInfo(v))));
      case 'get':
        return ok(d ? JSON.stringify(this.domainInfo(d)) : '');
      case 'create':
      case 'incoming': {
        const spec = JSON.parse(x!) as { name: string; vcpus: number; memoryMiB: number; disks?: { root: { path: string } }; network?: { ip?: string } };
        const cur = this.domains.get(spec.name);
        if (cur && cur.state !== 'shutoff') {
          if (op === 'create' && cur.state !== 'incoming') return ok(JSON.stringify(this.domainInfo(cur)));
          return fail(1, `domain ${spec.name} already exists here (${cur.state})`);
        }
        if (op === 'create' && (!spec.disks || !this.fsFor(spec.disks.root.path).exists(spec.disks.root.path))) {
          return fail(1, `could not open disk image ${spec.disks?.root.path}: No such file or directory`);
        }
        if (this.usedMemoryMiB() + spec.memoryMiB > this.init.memoryMiB) {
          return fail(1, `cannot set up guest memory (${spec.memoryMiB} MiB): Cannot allocate memory`);
        }
        const dom: SimDomain = { name: spec.name, state: op === 'create' ? 'paused' : 'incoming', vcpus: spec.vcpus, memoryMiB: spec.memoryMiB,
          ip: spec.network?.ip, bootedAtMs: now, readyAtMs: Infinity };
        this.domains.set(spec.name, dom);
        await simSleep(b.startMs, signal).catch((e) => {
          this.domains.delete(spec.name); // a failed create leaves no process behind
          throw e;
        });
        if (op === 'create') {
          dom.state = 'running';
          dom.bootedAtMs = Date.now();
          dom.readyAtMs = dom.bootedAtMs + b.bootMs;
        }
        return ok(JSON.stringify(this.domainInfo(dom)));
      }
      case 'finish-incoming': {
        if (!d || d.state !== 'incoming') return fail(1, `no incoming domain ${x}`);
        d.state = 'running';
        d.readyAtMs = Number(y);
        d.bootedAtMs = Number(z);
        return ok(JSON.stringify(this.domainInfo(d)));
      }
      case 'shutdown': {
        if (!d || d.state === 'shutoff') return ok(JSON.stringify({ clean: true }));
        const timeout = Number(y);
        await simSleep(Math.min(b.shutdownMs, timeout), signal);
        d.state = 'shutoff';
        return ok(JSON.stringify({ clean: b.shutdownMs <= timeout }));
      }
      case 'destroy':
        d?.migration?.cancel();
        this.domains.delete(x!);
        return ok();
      case 'suspend': {
        if (!d || d.state !== 'running') return fail(1, `domain ${x} is not running here`);
        const bytes = d.memoryMiB * 1048576;
        const ms = Math.round((bytes / b.suspendBytesPerSec) * 1000);
        d.state = 'paused';
        try {
          await simSleep(ms, signal);
        } catch (e) {
          d.state = 'running'; // a failed suspend leaves the domain running and no file
          throw e;
        }
        this.fsFor(y!).write(y!, Buffer.from(JSON.stringify({ sim: 'vmstate', name: d.name, vcpus: d.vcpus, memoryMiB: d.memoryMiB, bytes })));
        this.domains.delete(d.name);
        return ok(JSON.stringify({ file: y, bytes, durationMs: ms }));
      }
      case 'resume': {
        const spec = JSON.parse(x!) as { name: string; vcpus: number; memoryMiB: number; network?: { ip?: string } };
        const cur = this.domains.get(spec.name);
        if (cur && cur.state !== 'shutoff') return ok(JSON.stringify(this.domainInfo(cur)));
        const fs = this.fsFor(y!);
        const saved = fs.read(y!);
        if (!saved) return fail(1, `saved state ${y} does not exist`);
        const st = JSON.parse(saved.toString('utf8')) as { vcpus: number; memoryMiB: number; bytes: number };
        if (st.vcpus !== spec.vcpus || st.memoryMiB !== spec.memoryMiB) return fail(1, `saved state ${y} is of another size (${st.vcpus} vCPU, ${st.memoryMiB} MiB)`);
        await simSleep(b.startMs + Math.round((st.bytes / b.suspendBytesPerSec) * 1000), signal);
        fs.remove(y!);
        const t = Date.now();
        const dom: SimDomain = { name: spec.name, state: 'running', vcpus: spec.vcpus, memoryMiB: spec.memoryMiB, ip: spec.network?.ip, bootedAtMs: t, readyAtMs: t };
        this.domains.set(spec.name, dom);
        return ok(JSON.stringify(this.domainInfo(dom)));
      }
      case 'migrate':
        return this.migrateOut(x!, y!, Number(z), signal);
      case 'cancel': {
        if (!d?.migration) return ok('false');
        d.migration.cancel();
        return ok('true');
      }
      case 'console': {
        if (!d) return ok(JSON.stringify({ text: '', nextOffset: 0 }));
        let text = `sim: ${d.name} booting (${d.vcpus} vCPU, ${d.memoryMiB} MiB)\n`;
        if (d.state !== 'shutoff' && now >= d.readyAtMs) text += `VIRTUALINUX-READY ${d.name.split('.').slice(1).join('.')} ${d.ip ?? ''}\n`;
        const from = Math.min(Number(y ?? 0), text.length);
        return ok(JSON.stringify({ text: text.slice(from), nextOffset: text.length }));
      }
      case 'ping': {
        if (!d || d.state !== 'running' || now < d.readyAtMs) return ok('');
        return ok(JSON.stringify({ node: d.name.split('.').slice(1).join('.'), ip: d.ip ?? '', uptimeSeconds: Math.floor((now - d.bootedAtMs) / 1000) }));
      }
      default:
        return fail(2, `vl-sim domain: unknown operation ${op}`);
    }
  }

  /** The source side of a live migration: the target must hold the domain as incoming. */
  private async migrateOut(name: string, targetName: string, timeoutMs: number, signal?: AbortSignal): Promise<ExecResult> {
    const d = this.domains.get(name);
    if (!d || d.state !== 'running') return fail(1, `domain ${name} is not running here`);
    const target = this.world.hosts.get(targetName);
    if (!target || target.domains.get(name)?.state !== 'incoming') return fail(1, `target ${targetName} does not wait for ${name}`);
    const b = this.behaviour;
    const bytes = d.memoryMiB * 1048576;
    const totalMs = b.migrationFixedMs + Math.round((bytes / b.migrationBytesPerSec) * 1000);
    const failing = this.failMigrations > 0;
    if (failing) this.failMigrations--;
    const stop = new AbortController();
    let why: 'cancelled' | undefined;
    d.migration = { cancel: () => { why = 'cancelled'; stop.abort(); } };
    d.state = 'migrating';
    const onAbort = (): void => stop.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const t0 = Date.now();
    try {
      await simSleep(Math.min(failing ? totalMs / 2 : totalMs, timeoutMs), stop.signal);
      if (failing) return fail(1, `migration of ${name} to ${targetName} failed: the connection to the target was reset (injected fault)`);
      if (totalMs > timeoutMs) return fail(1, `migration of ${name} to ${targetName} did not complete within ${timeoutMs} ms`);
      if (target.unreachable) return fail(1, `migration of ${name} to ${targetName} failed: the target stopped answering`);
      this.domains.delete(name);
      const incoming = target.domains.get(name);
      if (incoming) incoming.ip = d.ip;
      return ok(JSON.stringify({ totalMs: Date.now() - t0, downtimeMs: Math.min(30, totalMs), bytes, readyAtMs: d.readyAtMs, bootedAtMs: d.bootedAtMs }));
    } catch (e) {
      if (why === 'cancelled') return fail(3, `migration of ${name} to ${targetName} was cancelled`);
      throw e;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      d.migration = undefined;
      if (this.domains.get(name) === d && d.state === 'migrating') d.state = 'running';
    }
  }

  // ---- volumes -----------------------------------------------------------------------------

  private async volumeCommand(a: readonly string[], stdin: Buffer, signal?: AbortSignal): Promise<ExecResult> {
    const b = this.behaviour;
    const [op, ...rest] = a;
    const put = (path: string, meta: object): void => this.fsFor(path).write(path, Buffer.from(JSON.stringify({ sim: 'volume', ...meta })));
    const has = (path: string): boolean => this.fsFor(path).exists(path);
    switch (op) {
      case 'original': {
        const [path, size] = rest;
        if (!has(path!)) {
          await simSleep(b.originalMs, signal);
          put(path!, { kind: 'original', size: Number(size), readOnly: true });
        }
        return ok();
      }
      case 'snapshot':
      case 'reset': {
        const [orig, ...paths] = rest;
        if (!has(orig!)) return fail(1, `original ${orig} does not exist`);
        for (const p of paths) {
          if (op === 'snapshot' && has(p)) continue;
          await simSleep(b.storageOpMs, signal);
          put(p, { kind: 'snapshot', origin: orig, size: 196608 });
        }
        return ok();
      }
      case 'swap': {
        const [size, ...paths] = rest;
        for (const p of paths) {
          await simSleep(b.storageOpMs, signal);
          put(p, { kind: 'swap', size: Number(size) });
        }
        return ok();
      }
      case 'config': {
        // stdin: [{ path, digest, size }]: the bytes themselves stay with the caller.
        for (const item of JSON.parse(stdin.toString('utf8')) as { path: string; digest: string; size: number }[]) {
          await simSleep(b.storageOpMs, signal);
          put(item.path, { kind: 'config', digest: item.digest, size: item.size });
        }
        return ok();
      }
      case 'shared': {
        const [path, size, fs] = rest;
        if (fs === 'nfs') this.fsFor(path!).mkdirp(path!);
        else if (!has(path!)) put(path!, { kind: 'shared', fs, size: Number(size) });
        await simSleep(b.storageOpMs, signal);
        return ok();
      }
      case 'remove':
        for (const p of rest) {
          if (has(p)) await simSleep(b.storageOpMs, signal);
          this.fsFor(p).remove(p);
        }
        return ok();
      case 'usage':
        return ok(rest.map((p) => { const data = this.fsFor(p).read(p); return data ? volumeSize(data) : 0; }).join('\n'));
      case 'exists':
        return ok(rest.map((p) => (has(p) ? '1' : '0')).join('\n'));
      default:
        return fail(2, `vl-sim volume: unknown operation ${op}`);
    }
  }
}

/** A file's size as the tools report it: a sim volume's recorded size, else its bytes. */
function volumeSize(data: Buffer): number {
  if (data[0] === 0x7b) {
    try {
      const m = JSON.parse(data.toString('utf8')) as { sim?: string; size?: number; bytes?: number };
      if (m.sim === 'volume') return m.size ?? 0;
      if (m.sim === 'vmstate') return m.bytes ?? 0;
    } catch {
      // not a sim record: its bytes
    }
  }
  return data.length;
}

/**
 * Every sim host of this process, by PhysicalNode name, and the storage roots they share.
 * Behaviour: DEFAULT_SIM_BEHAVIOUR overridden by the JSON in $VL_SIM_BEHAVIOUR (benchmarks).
 */
export class SimWorld {
  readonly hosts = new Map<string, SimHost>();
  private readonly sans = new Map<string, SimFs>();
  /** Routes and rule comments its hosts hold in common, kept once (sim-net.ts). */
  readonly netInterner = new SimNetInterner();
  behaviour: SimBehaviour;

  constructor(behaviour: Partial<SimBehaviour> = {}) {
    this.behaviour = { ...DEFAULT_SIM_BEHAVIOUR, ...behaviour };
  }

  /** The host of that name, made on first use; a later call updates what it is (spec changes). */
  host(name: string, init: SimHostInit): SimHost {
    let h = this.hosts.get(name);
    if (!h) {
      h = new SimHost(name, this, init);
      this.hosts.set(name, h);
    } else {
      h.init = init;
    }
    return h;
  }

  san(root: string): SimFs {
    let fs = this.sans.get(root);
    if (!fs) {
      fs = new SimFs();
      this.sans.set(root, fs);
    }
    return fs;
  }
}

function behaviourFromEnv(): Partial<SimBehaviour> {
  const text = process.env.VL_SIM_BEHAVIOUR;
  if (!text) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`VL_SIM_BEHAVIOUR: not JSON: ${(e as Error).message}`);
  }
  const out: Partial<SimBehaviour> = {};
  for (const [k, n] of Object.entries(v as Record<string, unknown>)) {
    if (!(k in DEFAULT_SIM_BEHAVIOUR)) throw new Error(`VL_SIM_BEHAVIOUR: unknown field ${k}; known: ${Object.keys(DEFAULT_SIM_BEHAVIOUR).join(', ')}`);
    const min = /PerSec$|^maxConcurrent$/.test(k) ? 1 : 0;
    if (typeof n !== 'number' || !Number.isFinite(n) || n < min) throw new Error(`VL_SIM_BEHAVIOUR: ${k} must be a number >= ${min}`);
    (out as Record<string, number>)[k] = n;
  }
  return out;
}

let world: SimWorld | undefined;
/** The process-wide world every SimTransport made by transportFor uses. */
export function simWorld(): SimWorld {
  world ??= new SimWorld(behaviourFromEnv());
  return world;
}

/** The volume directory helper the sim storage driver shares with the host: `<vcDir>/<name>.img`. */
export function simVolumePath(vcDir: string, name: string): string {
  return posix.join(vcDir, `${name}.img`);
}
