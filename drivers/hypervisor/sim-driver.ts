// SIMULATION ONLY: the hypervisor driver of a PhysicalNode with `hypervisor: sim` (and
// `transport: sim`): the VMs of a simulated host (drivers/transport/sim-host.ts), for benchmarks
// of the control plane at scale and for unit tests of fault handling. Not for production, and
// never the proof that a feature works on a real hypervisor (README "Simulated hosts").
//
// It keeps the HypervisorDriver contract (types.ts) as the sim host models it: every call is one
// `vl-sim domain ...` command through the node's transport (so a host that stops answering fails
// its calls at their deadline); create takes the host's start delay and the guest prints its
// VIRTUALINUX-READY line and answers the agent ping after the boot delay; live migration starts
// the domain incoming on the target, transfers (time growing with memory), then runs it there;
// a failed or cancelled migration leaves the domain running on the source and nothing on the target.

import { execOk, TransportError, type Transport } from '../transport/types.js';
import { simHostOf } from '../transport/sim-transport.js';
import {
  HypervisorError, MigrationCancelledError, MigrationFailedError, validateDomainName,
  type ConsoleChunk, type ConsoleReadOptions, type DomainInfo, type DomainSpec, type GuestAgentReply, type HypervisorDriver,
  type MigrateOptions, type MigrationResult, type ShutdownOptions, type ShutdownResult, type SuspendResult,
} from './types.js';

const SLACK_MS = 10_000;

export class SimHypervisorDriver implements HypervisorDriver {
  readonly kind = 'sim' as const;
  readonly node: string;

  constructor(readonly transport: Transport) {
    if (!simHostOf(transport)) {
      throw new HypervisorError(`${transport.host}: the sim hypervisor needs spec.transport: sim (it runs only simulated VMs)`);
    }
    this.node = transport.host;
  }

  private async call(args: readonly string[], timeoutMs?: number): Promise<string> {
    return execOk(this.transport, ['vl-sim', 'domain', ...args], timeoutMs !== undefined ? { timeoutMs } : {});
  }

  async list(): Promise<DomainInfo[]> {
    return JSON.parse(await this.call(['list'])) as DomainInfo[];
  }

  async get(name: string): Promise<DomainInfo | undefined> {
    const out = await this.call(['get', name]);
    return out ? (JSON.parse(out) as DomainInfo) : undefined;
  }

  async create(spec: DomainSpec): Promise<DomainInfo> {
    validateDomainName(spec.name);
    return JSON.parse(await this.call(['create', JSON.stringify(spec)])) as DomainInfo;
  }

  async shutdown(name: string, opts: ShutdownOptions = {}): Promise<ShutdownResult> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    return JSON.parse(await this.call(['shutdown', name, String(timeoutMs)], timeoutMs + SLACK_MS)) as ShutdownResult;
  }

  async destroy(name: string): Promise<void> {
    await this.call(['destroy', name]);
  }

  async suspend(name: string, file: string): Promise<SuspendResult> {
    return JSON.parse(await this.call(['suspend', name, file], 0)) as SuspendResult;
  }

  async resume(spec: DomainSpec, file: string): Promise<DomainInfo> {
    validateDomainName(spec.name);
    return JSON.parse(await this.call(['resume', JSON.stringify(spec), file], 0)) as DomainInfo;
  }

  async migrate(name: string, target: HypervisorDriver, opts: MigrateOptions = {}): Promise<MigrationResult> {
    if (!(target instanceof SimHypervisorDriver)) throw new MigrationFailedError(`${this.node}: a sim domain migrates only to another sim host`);
    const t0 = performance.now();
    const info = await this.get(name);
    if (!info || info.state !== 'running') throw new MigrationFailedError(`${this.node}: domain ${name} is not running here`);
    const timeoutMs = opts.timeoutMs ?? 120_000;
    // The target waits for the domain (the spec's sizes are what the source runs).
    const spec = { name, vcpus: info.vcpus ?? 1, memoryMiB: info.memoryMiB ?? 0 };
    await target.call(['incoming', JSON.stringify(spec)], timeoutMs).catch((e: unknown) => {
      throw new MigrationFailedError(`${this.node}: starting ${name} incoming on ${target.node} failed: ${(e as Error).message}`, { cause: e });
    });
    const t1 = performance.now();
    opts.onProgress?.({ status: 'active', transferredBytes: 0, remainingBytes: spec.memoryMiB * 1048576, totalBytes: spec.memoryMiB * 1048576 });
    let out: { totalMs: number; downtimeMs: number; bytes: number; readyAtMs: number; bootedAtMs: number };
    try {
      const r = await this.transport.exec(['vl-sim', 'domain', 'migrate', name, target.node, String(timeoutMs)], { timeoutMs: timeoutMs + SLACK_MS });
      if (r.code === 3) throw new MigrationCancelledError(`${this.node}: ${r.stderr.trim()}`);
      if (r.code !== 0) throw new MigrationFailedError(`${this.node}: ${r.stderr.trim()}`);
      out = JSON.parse(r.stdout) as typeof out;
    } catch (e) {
      // Nothing may be left on the target; the source keeps the domain (the host model restores it).
      await target.call(['destroy', name], timeoutMs).catch(() => undefined);
      if (e instanceof MigrationFailedError) throw e;
      throw new MigrationFailedError(`${this.node}: migration of ${name} to ${target.node} failed: ${(e as Error).message}`, { cause: e });
    }
    const t2 = performance.now();
    await target.call(['finish-incoming', name, String(out.readyAtMs), String(out.bootedAtMs)]);
    const t3 = performance.now();
    return {
      downtimeMs: out.downtimeMs, totalMs: out.totalMs, endToEndMs: Math.round(t3 - t0), transferredBytes: out.bytes,
      phasesMs: { prepare: Math.round(t1 - t0), transfer: Math.round(t2 - t1), switchover: Math.round(t3 - t2), cleanup: 0 },
    };
  }

  async cancelMigration(name: string): Promise<boolean> {
    return (await this.call(['cancel', name])).trim() === 'true';
  }

  async readConsole(name: string, opts: ConsoleReadOptions = {}): Promise<ConsoleChunk> {
    return JSON.parse(await this.call(['console', name, String(opts.fromOffset ?? 0)])) as ConsoleChunk;
  }

  async pingGuestAgent(name: string, timeoutMs: number): Promise<GuestAgentReply | undefined> {
    try {
      const out = await this.call(['ping', name], timeoutMs);
      return out ? (JSON.parse(out) as GuestAgentReply) : undefined;
    } catch (e) {
      if (e instanceof TransportError) return undefined;
      throw e;
    }
  }
}
