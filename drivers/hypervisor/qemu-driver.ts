// QemuDriver: the HypervisorDriver contract (types.ts) with qemu-system-x86_64 on one node, reached
// only through the node's Transport. Each domain is one daemonized QEMU process named
// `guest=<ns>.<vn>`, with its pid file, two QMP sockets, console log and spec under
// `<runRoot>/<name>/` (qemu-argv.ts). A QEMU process counts as the domain's only when its
// /proc/PID/cmdline carries that name, so a stale pid file never designates a stranger. Only a
// directory with a spec or pid file is a domain: others under runRoot (the NFS server's state,
// drivers/nfs) are never listed, and destroy leaves them alone.
//
// Acceleration `auto` probes KVM with a real boot once per node (qemu-acceleration.ts).
//
// Suspend = migration to a file (QEMU 7.2 has no `file:` URI: `exec:cat > LINK`, where LINK is a
// symlink under runRoot named by a hash, so no user data enters QEMU's shell string), resume =
// `-incoming defer` + migrate-incoming from that file. Live migration = a target QEMU started with
// `-incoming defer` listening on the target's migration address (port chosen by the kernel), then
// `migrate tcp:` from the source with downtime limit and bandwidth set. The QMP side of all three
// (waiting for a migration's end, progress) is in qemu-migration.ts; the shell scripts run on the
// node, and the parser of the domain listing, in qemu-scripts.ts.

import { setTimeout as sleep } from 'node:timers/promises';
import { execOk, type Transport } from '../transport/types.js';
import { readConsoleLog } from './console-log.js';
import { attachConsole, pingAgent } from './guest-channels.js';
import { QmpClient, QmpError } from './qmp-client.js';
import { AccelerationProbe } from './qemu-acceleration.js';
import { buildQemuArgv, domainPaths, nameArg, type Acceleration, type DomainPaths } from './qemu-argv.js';
import { enableMigrationEvents, MIGRATION_ACTIVE, migrationProgress, pollMigration, runWhenLoaded, type QueryMigrate } from './qemu-migration.js';
import { KILL_SCRIPT, LIST_SCRIPT, parseDomainList, RETIRE_SCRIPT, START_SCRIPT, WAIT_GONE_SCRIPT, type ProcEntry } from './qemu-scripts.js';
import {
  HypervisorError,
  MigrationCancelledError,
  MigrationFailedError,
  validateDomainName,
  type AttachConsoleOptions,
  type ConsoleChunk,
  type ConsoleReadOptions,
  type ConsoleSession,
  type GuestAgentReply,
  type DomainInfo,
  type DomainSpec,
  type DomainState,
  type HypervisorDriver,
  type MigrateOptions,
  type MigrationResult,
  type PreparedMigration,
  type ShutdownOptions,
  type ShutdownResult,
  type SuspendResult,
} from './types.js';

/** How long a refused connect to a QMP socket is tried again (see openQmp). */
const QMP_CONNECT_RETRY_MS = 3_000;

export interface QemuDriverOptions {
  transport: Transport;
  /** Directory on the node for the domains' run files, e.g. /run/virtualinux or <node state>/run. */
  runRoot: string;
  /** The node's address other nodes reach for live migration (the target listens on it). */
  migrationAddress: string;
  accel?: 'auto' | Acceleration;
  qemuBinary?: string;
  /** How long the KVM boot check may take; default 15 000 ms. */
  kvmProbeTimeoutMs?: number;
  /**
   * A KVM guest that printed nothing on its early console within this long hangs (as a nested
   * KVM guest does): the check gives up then; default 3 000 ms. The kernel's early console speaks
   * about 0.35 s after QEMU starts even under TCG, so a working KVM is far inside it.
   */
  kvmFirstOutputMs?: number;
}

/** The target side of a live migration in progress (QemuDriver.prepareIncoming). */
export interface IncomingMigration {
  uri: string;
  finish(): Promise<void>;
  abort(): Promise<void>;
  /** Closes the monitor connection and leaves the target waiting, as a manager that dies does (tests). */
  detach(): void;
}

/** prepareIncoming: a domain of that name already runs on the target (it is left alone). */
class TargetOccupiedError extends HypervisorError {}

export class QemuDriver implements HypervisorDriver {
  readonly kind = 'qemu' as const;
  readonly transport: Transport;
  readonly node: string;
  readonly runRoot: string;
  readonly migrationAddress: string;
  private readonly qemu: string;
  private readonly accel: AccelerationProbe;
  private readonly outgoing = new Set<string>();
  /** Specs of the domains this driver started (saves a round trip before a migration). */
  private readonly specCache = new Map<string, DomainSpec>();

  constructor(opts: QemuDriverOptions) {
    // runRoot appears in QEMU `exec:` shell strings (via the state links): keep it to a safe set.
    if (!/^\/[A-Za-z0-9._/-]*$/.test(opts.runRoot)) {
      throw new HypervisorError(`runRoot ${JSON.stringify(opts.runRoot)} must be an absolute path of letters, digits, ".", "_", "-", "/"`);
    }
    this.transport = opts.transport;
    this.node = opts.transport.host;
    this.runRoot = opts.runRoot.replace(/\/+$/, '') || '/';
    this.migrationAddress = opts.migrationAddress;
    this.qemu = opts.qemuBinary ?? 'qemu-system-x86_64';
    this.accel = new AccelerationProbe({
      transport: this.transport,
      runRoot: this.runRoot,
      qemu: this.qemu,
      mode: opts.accel ?? 'auto',
      probeTimeoutMs: opts.kvmProbeTimeoutMs ?? 15_000,
      firstOutputMs: opts.kvmFirstOutputMs ?? 3_000,
    });
  }

  paths(name: string, consoleLog?: string): DomainPaths {
    return domainPaths(this.runRoot, name, consoleLog);
  }

  // ---- observation ----

  private async procEntries(only?: string): Promise<ProcEntry[]> {
    return parseDomainList(await execOk(this.transport, ['sh', '-c', LIST_SCRIPT, 'sh', this.runRoot, only ?? '']));
  }

  private async describe(e: ProcEntry): Promise<DomainInfo> {
    if (!e.alive || !e.pid) return { name: e.name, state: 'shutoff' };
    const base = { name: e.name, pid: e.pid, vcpus: e.spec?.vcpus, memoryMiB: e.spec?.memoryMiB };
    try {
      return await this.withQmp(e.name, 'ctl', async (q) => {
        const st = await q.execute<{ status: string; running: boolean }>('query-status');
        let state: DomainState = st.running ? 'running' : 'paused';
        if (st.status === 'inmigrate') state = 'incoming';
        else if (st.status === 'shutdown') state = 'shutoff';
        else {
          const mig = await q.execute<QueryMigrate>('query-migrate');
          if (mig.status && MIGRATION_ACTIVE.has(mig.status)) state = 'migrating';
        }
        return { ...base, state, detail: st.status };
      }, 5000);
    } catch (err) {
      // The process exists but QMP does not answer (starting, or busy): report it as present.
      return { ...base, state: 'paused', detail: `qmp unavailable: ${(err as Error).message}` };
    }
  }

  async list(): Promise<DomainInfo[]> {
    const entries = await this.procEntries();
    return Promise.all(entries.map((e) => this.describe(e)));
  }

  async get(name: string): Promise<DomainInfo | undefined> {
    validateDomainName(name);
    const [e] = await this.procEntries(name);
    return e ? this.describe(e) : undefined;
  }


  // ---- QMP ----

  /**
   * A QMP socket serves one client at a time: while one is connected QEMU stops accepting, the
   * kernel queues two more connects and refuses the next at once (EAGAIN; over SSH, a failed channel
   * open). Every observation (list, get: the runtime's polls, the orphan scan) opens `ctl`, so a
   * connect is refused now and then; it is tried again for up to QMP_CONNECT_RETRY_MS (never past
   * timeoutMs). Before, a refused `system_powerdown` left shutdown() waiting its whole timeout.
   */
  private async openQmp(name: string, which: 'ops' | 'ctl', timeoutMs = 10_000): Promise<QmpClient> {
    const p = this.paths(name);
    const target = { unixSocket: which === 'ops' ? p.opsSocket : p.ctlSocket };
    const giveUp = Date.now() + Math.min(timeoutMs, QMP_CONNECT_RETRY_MS);
    for (let pause = 25; ; pause = Math.min(pause * 2, 400)) {
      let stream;
      try {
        stream = await this.transport.connect(target);
      } catch (err) {
        if (Date.now() + pause > giveUp) throw err;
        await sleep(pause);
        continue;
      }
      return QmpClient.connect(stream, { timeoutMs, label: `${this.node}/${name}` });
    }
  }

  private async withQmp<T>(name: string, which: 'ops' | 'ctl', fn: (q: QmpClient) => Promise<T>, timeoutMs = 10_000): Promise<T> {
    const q = await this.openQmp(name, which, timeoutMs);
    try {
      return await fn(q);
    } finally {
      q.close();
    }
  }

  // ---- acceleration ----

  /** KVM when a real boot proves it usable on this node, else TCG (qemu-acceleration.ts); cached per node. */
  acceleration(kernel: string | undefined): Promise<Acceleration> {
    return this.accel.acceleration(kernel);
  }

  // ---- lifecycle ----

  /** Starts the domain's QEMU; 'running' when its QEMU already ran (nothing started). */
  private async startQemu(spec: DomainSpec, mode: { incoming?: boolean; appendConsole?: boolean }): Promise<'started' | 'running'> {
    validateDomainName(spec.name);
    const p = this.paths(spec.name, spec.consoleLog);
    const accel = await this.acceleration(spec.boot?.kernel);
    const sockDir = p.opsSocket.slice(0, p.opsSocket.lastIndexOf('/'));
    const argv = [this.qemu, ...buildQemuArgv(spec, p, { accel, incoming: mode.incoming, appendConsole: mode.appendConsole })];
    const r = await this.transport.exec(
      ['sh', '-c', START_SCRIPT, 'sh', p.dir, sockDir, p.pidFile, p.opsSocket, p.ctlSocket, p.specFile, nameArg(spec.name), p.consoleLog, ...argv],
      { stdin: JSON.stringify(spec) + '\n', timeoutMs: 60_000 },
    );
    if (r.code === 17) return 'running';
    this.specCache.set(spec.name, spec);
    if (r.code !== 0) {
      // -daemonize: a non-zero exit means the QEMU never started; make sure (a half-started one is killed).
      await this.killDomainProcess(spec.name).catch(() => undefined);
      throw new HypervisorError(
        `${this.node}: starting QEMU for ${spec.name} failed (exit ${r.code}): ${r.stderr.trim()}; check the disk, kernel and shared paths in the spec`,
      );
    }
    return 'started';
  }

  async create(spec: DomainSpec): Promise<DomainInfo> {
    validateDomainName(spec.name);
    await this.startQemu(spec, {});
    const info = await this.get(spec.name);
    if (!info || info.state === 'shutoff') {
      throw new HypervisorError(`${this.node}: QEMU for ${spec.name} exited right after start; see its console log`);
    }
    return info;
  }

  /** Kills the domain's QEMU if it runs; keeps its files. */
  private async killDomainProcess(name: string): Promise<void> {
    const [e] = await this.procEntries(name);
    if (!e?.alive || !e.pid) return;
    const r = await this.transport.exec(['sh', '-c', KILL_SCRIPT, 'sh', String(e.pid)], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new HypervisorError(`${this.node}: QEMU ${e.pid} of ${name} did not end after SIGKILL`);
  }

  /** Waits for a quitting QEMU to end (killing it after 10 s) and removes the domain's files, in one round trip. */
  private async retire(name: string, pid: number, waitMs = 10_000): Promise<void> {
    this.specCache.delete(name);
    const r = await this.transport.exec(['sh', '-c', RETIRE_SCRIPT, 'sh', String(pid), ...this.retireArgs(name, waitMs)], {
      timeoutMs: 30_000,
    });
    if (r.code !== 0) throw new HypervisorError(`${this.node}: QEMU ${pid} of ${name} did not end: ${r.stderr.trim()}`);
  }

  private retireArgs(name: string, waitMs: number): string[] {
    const p = this.paths(name);
    return [String(Math.ceil(waitMs / 10)), p.dir, p.opsSocket, p.ctlSocket, p.consoleSocket, p.agentSocket, p.stateLink];
  }

  /**
   * Starts RETIRE_SCRIPT armed (see there) on this node, so that a migration's clean-up costs no
   * command start once the target runs. `release(pid)` retires the domain and resolves when its
   * process is gone and its files removed; `disarm()` lets the script end without touching anything.
   */
  private armRetire(name: string): { release(pid: number): Promise<void>; disarm(): Promise<void> } {
    const proc = this.transport.spawn(['sh', '-c', RETIRE_SCRIPT, 'sh', '-', ...this.retireArgs(name, 10_000)], { timeoutMs: 0 });
    let told = false;
    let stderr = '';
    proc.stdout.resume();
    proc.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const done = proc.done.then((r) => ({ ...r, stderr }), (err: unknown) => ({ code: -1, stdout: '', stderr: (err as Error).message }));
    return {
      release: async (pid) => {
        this.specCache.delete(name);
        if (told) throw new HypervisorError(`${this.node}: the clean-up of ${name} was already told what to do`);
        told = true;
        proc.stdin.end(`retire ${pid}\n`);
        const r = await done;
        // The armed script could not run (a lost connection): retire the ordinary way.
        if (r.code === -1) return this.retire(name, pid);
        if (r.code !== 0) throw new HypervisorError(`${this.node}: QEMU ${pid} of ${name} did not end: ${r.stderr.trim()}`);
      },
      disarm: async () => {
        if (!told) proc.stdin.end();
        told = true;
        await done;
      },
    };
  }

  async destroy(name: string): Promise<void> {
    validateDomainName(name);
    const [e] = await this.procEntries(name);
    // No domain of that name: nothing to end, and a directory that is not a domain's stays.
    if (!e) return;
    await this.retire(name, e.alive && e.pid ? e.pid : 0, 0);
  }

  private async waitGone(pid: number, timeoutMs: number): Promise<boolean> {
    const r = await this.transport.exec(['sh', '-c', WAIT_GONE_SCRIPT, 'sh', String(pid), String(Math.ceil(timeoutMs / 1000))], {
      timeoutMs: timeoutMs + 10_000,
    });
    return r.code === 0;
  }

  async shutdown(name: string, opts: ShutdownOptions = {}): Promise<ShutdownResult> {
    validateDomainName(name);
    const [e] = await this.procEntries(name);
    if (!e?.alive || !e.pid) return { clean: true };
    try {
      await this.withQmp(name, 'ctl', (q) => q.execute('system_powerdown'));
    } catch {
      // QMP unreachable: the process is killed below after the timeout like any unresponsive guest.
    }
    if (await this.waitGone(e.pid, opts.timeoutMs ?? 30_000)) return { clean: true };
    await this.killDomainProcess(name);
    return { clean: false };
  }

  async readConsole(name: string, opts: ConsoleReadOptions = {}): Promise<ConsoleChunk> {
    validateDomainName(name);
    const p = this.paths(name);
    return readConsoleLog(this.transport, [`${p.consoleLog}.link`, p.consoleLog], opts.fromOffset ?? 0);
  }

  async pingGuestAgent(name: string, timeoutMs: number): Promise<GuestAgentReply | undefined> {
    validateDomainName(name);
    return pingAgent(this.transport, this.paths(name).agentSocket, timeoutMs);
  }

  async attachConsole(name: string, opts: AttachConsoleOptions = {}): Promise<ConsoleSession> {
    validateDomainName(name);
    const p = this.paths(name);
    return attachConsole(this.transport, { lockFile: `${p.dir}/console.attach`, socket: p.consoleSocket }, name, !!opts.force);
  }

  /** Polls the console until `pattern` appears after `fromOffset`; resolves with the matching text. */
  async waitForConsole(name: string, pattern: RegExp, timeoutMs: number, fromOffset = 0): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let text = '';
    let offset = fromOffset;
    for (;;) {
      const c = await this.readConsole(name, { fromOffset: offset });
      text += c.text;
      offset = c.nextOffset;
      const m = pattern.exec(text);
      if (m) return m[0];
      if (Date.now() > deadline) {
        throw new HypervisorError(`${this.node}: ${name} did not print ${pattern} within ${timeoutMs} ms; console tail: ${text.slice(-400)}`);
      }
      await sleep(100);
    }
  }

  // ---- suspend / resume ----

  async suspend(name: string, file: string): Promise<SuspendResult> {
    validateDomainName(name);
    const [e] = await this.procEntries(name);
    if (!e?.alive || !e.pid) throw new HypervisorError(`${this.node}: cannot suspend ${name}: it is not running here`);
    const p = this.paths(name);
    const partial = `${file}.partial`;
    await execOk(this.transport, ['sh', '-c', 'mkdir -p "${1%/*}" && rm -f "$2" && ln -sfn "$2" "$1"', 'sh', p.stateLink, partial]);
    const t0 = Date.now();
    let wasRunning = false;
    try {
      await this.withQmp(name, 'ops', async (q) => {
        wasRunning = (await q.execute<{ running: boolean }>('query-status')).running;
        await q.execute('stop');
        await enableMigrationEvents(q);
        await q.execute('migrate-set-parameters', { 'max-bandwidth': 10 * 1024 ** 3 });
        await q.execute('migrate', { uri: `exec:cat > ${p.stateLink}` });
        const fin = await pollMigration(q, 600_000);
        if (fin.status !== 'completed') {
          throw new HypervisorError(`${this.node}: writing the state of ${name} to ${file} ${fin.status}: ${fin['error-desc'] ?? ''}`);
        }
      }, 10_000);
    } catch (err) {
      await this.withQmp(name, 'ctl', async (q) => {
        if (wasRunning) await q.execute('cont');
      }).catch(() => undefined);
      await this.transport.exec(['rm', '-f', '--', partial, p.stateLink]);
      throw err instanceof HypervisorError ? err : new HypervisorError(`${this.node}: suspending ${name} failed: ${(err as Error).message}`, { cause: err });
    }
    const durationMs = Date.now() - t0;
    const size = await execOk(this.transport, ['sh', '-c', 'mv -f "$1" "$2" && stat -c %s "$2"', 'sh', partial, file]);
    await this.withQmp(name, 'ctl', (q) => q.execute('quit')).catch(() => undefined);
    await this.retire(name, e.pid);
    return { file, bytes: Number(size.trim()), durationMs };
  }

  async resume(spec: DomainSpec, file: string): Promise<DomainInfo> {
    validateDomainName(spec.name);
    const p = this.paths(spec.name, spec.consoleLog);
    const linked = await this.transport.exec(['sh', '-c', 'test -f "$2" && mkdir -p "${1%/*}" && ln -sfn "$2" "$1"', 'sh', p.stateLink, file]);
    if (linked.code !== 0) {
      const cur = await this.get(spec.name);
      if (cur && cur.state !== 'shutoff') return cur; // resumed already: the file went with it
      throw new HypervisorError(`${this.node}: cannot resume ${spec.name}: no state file ${file}`);
    }
    try {
      if ((await this.startQemu(spec, { incoming: true, appendConsole: true })) === 'running') {
        const cur = await this.get(spec.name);
        if (cur) return cur;
      }
      await this.withQmp(spec.name, 'ops', async (q) => {
        await enableMigrationEvents(q);
        await q.execute('migrate-incoming', { uri: `exec:cat ${p.stateLink}` });
        await runWhenLoaded(q, this.node, spec.name, 600_000);
      });
    } catch (err) {
      await this.destroy(spec.name).catch(() => undefined);
      throw new HypervisorError(`${this.node}: resuming ${spec.name} from ${file} failed (the file is kept): ${(err as Error).message}`, { cause: err });
    }
    await this.transport.exec(['rm', '-f', '--', file, p.stateLink]);
    const info = await this.get(spec.name);
    if (!info) throw new HypervisorError(`${this.node}: ${spec.name} vanished right after resume`);
    return info;
  }

  // ---- live migration ----

  /**
   * Target side: starts `spec` waiting for an incoming migration on this node's migration address.
   * Returns the URI the source sends to, `finish()` (after the source reported completion: waits
   * until the state is loaded and the domain runs) and `abort()` (kills the target, removes its
   * files). The target's ops monitor stays connected in between, so finishing costs no new connection.
   * A domain of that name already here is replaced only when it merely waits as an incoming one (a
   * preparation whose manager died) and `mayReplace` resolves (the source checked that no transfer
   * feeds it); otherwise TargetOccupiedError, and it is left alone.
   */
  async prepareIncoming(spec: DomainSpec, mayReplace?: Promise<unknown>): Promise<IncomingMigration> {
    if ((await this.startQemu(spec, { incoming: true, appendConsole: true })) === 'running') {
      const cur = await this.get(spec.name);
      if (cur?.state !== 'incoming' || !mayReplace) {
        throw new TargetOccupiedError(`${this.node}: cannot receive ${spec.name}: a domain of that name already runs here (${cur?.state ?? 'unknown'})`);
      }
      await mayReplace.catch((err: unknown) => {
        throw new TargetOccupiedError(`${this.node}: an incoming ${spec.name} waits here and its source could not confirm that no transfer feeds it: ${(err as Error).message}`);
      });
      await this.destroy(spec.name);
      if ((await this.startQemu(spec, { incoming: true, appendConsole: true })) === 'running') {
        throw new TargetOccupiedError(`${this.node}: cannot receive ${spec.name}: a domain of that name came back while its stale incoming one was replaced`);
      }
    }
    const name = spec.name;
    let q: QmpClient | undefined;
    try {
      q = await this.openQmp(name, 'ops');
      const host = this.migrationAddress.includes(':') ? `[${this.migrationAddress}]` : this.migrationAddress;
      // Sent together (QMP answers in order): one round trip instead of three over SSH.
      const [, , m] = await Promise.all([
        enableMigrationEvents(q),
        q.execute('migrate-incoming', { uri: `tcp:${host}:0` }),
        q.execute<QueryMigrate>('query-migrate'),
      ]);
      const sa = m['socket-address']?.find((a) => a.type === 'inet');
      if (!sa?.port) throw new HypervisorError(`${this.node}: QEMU did not report its incoming migration port`);
      const client = q;
      return {
        uri: `tcp:${host}:${sa.port}`,
        finish: async () => {
          try {
            await runWhenLoaded(client, this.node, name, 30_000);
          } finally {
            client.close();
          }
        },
        abort: async () => {
          client.close();
          await this.destroy(name);
        },
        detach: () => client.close(),
      };
    } catch (err) {
      q?.close();
      await this.destroy(name).catch(() => undefined);
      throw err;
    }
  }

  /** migrate() is prepareMigration then run(); its end to end time and prepare phase count the preparation. */
  async migrate(name: string, target: HypervisorDriver, opts: MigrateOptions = {}): Promise<MigrationResult> {
    const prepared = await this.prepareMigration(name, target, opts);
    const { preparedMs = 0, ...r } = await prepared.run();
    return {
      ...r,
      endToEndMs: r.endToEndMs + preparedMs,
      phasesMs: r.phasesMs && { ...r.phasesMs, prepare: r.phasesMs.prepare + preparedMs },
    };
  }

  /**
   * Everything of a live migration before the transfer, off its clock: the target QEMU started
   * and listening (the bulk: a QEMU start), the source's monitor connected with the migration's
   * parameters set, its pid read, and the clean-up script armed. The domain keeps running untouched.
   */
  async prepareMigration(name: string, target: HypervisorDriver, opts: MigrateOptions = {}): Promise<PreparedMigration> {
    validateDomainName(name);
    const t0 = Date.now();
    if (!(target instanceof QemuDriver)) throw new HypervisorError(`cannot migrate ${name} from QEMU to a ${target.kind} node`);
    if (target.node === this.node && target.runRoot === this.runRoot) {
      throw new HypervisorError(`cannot migrate ${name} to the node it runs on (${this.node})`);
    }
    if (this.outgoing.has(name)) throw new HypervisorError(`${this.node}: ${name} is already migrating`);
    this.outgoing.add(name);
    // While the target starts, the source's migration monitor is readied.
    const sourceQmp = this.openQmp(name, 'ops').then(async (q) => {
      try {
        // A transfer already under way (another manager's): never touch its parameters or target.
        const m = await q.execute<QueryMigrate>('query-migrate');
        if (m.status && MIGRATION_ACTIVE.has(m.status)) throw new HypervisorError(`${this.node}: ${name} is already migrating (${m.status})`);
        // Sent together (QMP answers in order): one round trip.
        await Promise.all([
          enableMigrationEvents(q),
          q.execute('migrate-set-parameters', {
            'downtime-limit': opts.downtimeLimitMs ?? 300,
            'max-bandwidth': opts.maxBandwidthBytesPerSec ?? 10 * 1024 ** 3,
          }),
        ]);
        return q;
      } catch (err) {
        q.close();
        throw err;
      }
    });
    sourceQmp.catch(() => undefined);
    /** The source's process (its pid, for the clean-up). */
    let source: Promise<ProcEntry | undefined>;
    let incoming: IncomingMigration;
    const prepared = async (prep: Promise<IncomingMigration>): Promise<IncomingMigration> => {
      try {
        return await prep;
      } catch (err) {
        // A domain that runs there is not ours to remove; anything else we started is.
        if (!(err instanceof TargetOccupiedError)) await target.destroy(name).catch(() => undefined);
        throw new MigrationFailedError(`migrating ${name} to ${target.node}: the target could not be prepared: ${(err as Error).message}`, { cause: err });
      }
    };
    let q: QmpClient;
    try {
      const cached = this.specCache.get(name);
      if (cached) {
        // The spec is known (this driver started the domain): the target starts at once, the
        // source's monitor answering shows it runs here, and its pid is read meanwhile.
        const prep = target.prepareIncoming(cached, sourceQmp);
        prep.catch(() => undefined);
        source = this.procEntries(name).then(([e]) => e);
        source.catch(() => undefined);
        try {
          q = await sourceQmp;
        } catch (err) {
          await prep.then((i) => i.abort()).catch(() => undefined);
          throw new HypervisorError(`${this.node}: cannot migrate ${name}: its QEMU does not answer here (${(err as Error).message})`, { cause: err });
        }
        incoming = await prepared(prep);
      } else {
        // Otherwise the spec comes from the source's run directory first.
        const [e] = await this.procEntries(name);
        if (!e?.alive || !e.pid || !e.spec) throw new HypervisorError(`${this.node}: cannot migrate ${name}: it is not running here`);
        source = Promise.resolve(e);
        incoming = await prepared(target.prepareIncoming(e.spec, sourceQmp));
        q = await sourceQmp.catch(async (err: unknown) => {
          await incoming.abort().catch(() => undefined);
          throw new HypervisorError(`${this.node}: cannot migrate ${name}: its QEMU does not answer here (${(err as Error).message})`, { cause: err });
        });
      }
    } catch (err) {
      this.outgoing.delete(name);
      await sourceQmp.then((c) => c.close()).catch(() => undefined);
      throw err;
    }
    // The clean-up script (it acts only when released) and the source's pid, ready before the clock.
    const cleanup = this.armRetire(name);
    await source.catch(() => undefined);
    const preparedMs = Date.now() - t0;
    let claimed = false;
    const claim = (): void => {
      if (claimed) throw new HypervisorError(`${this.node}: the prepared migration of ${name} was already run or aborted`);
      claimed = true;
    };
    return {
      preparedMs,
      run: async () => {
        claim();
        return this.runPrepared(name, target, { q, incoming, cleanup, source, opts, preparedMs });
      },
      abort: async () => {
        claim();
        q.close();
        await cleanup.disarm();
        this.outgoing.delete(name);
        await incoming.abort();
      },
    };
  }

  /** The transfer and switch-over of a prepared migration; see migrate(). */
  private async runPrepared(
    name: string,
    target: QemuDriver,
    p: {
      q: QmpClient; incoming: IncomingMigration; cleanup: ReturnType<QemuDriver['armRetire']>;
      source: Promise<ProcEntry | undefined>; opts: MigrateOptions; preparedMs: number;
    },
  ): Promise<MigrationResult> {
    const { q, incoming, cleanup, source, opts } = p;
    const t0 = Date.now();
    let tMigrate = t0;
    let tCompleted = 0;
    let tSwitched = 0;
    let retired: Promise<void> | undefined;
    let fin: QueryMigrate;
    // The target's wait for the state starts with QEMU's announcement of the end, not after the
    // query that reads its figures.
    let finishing: Promise<void> | undefined;
    const startFinish = (): Promise<void> => {
      finishing ??= incoming.finish();
      finishing.catch(() => undefined);
      return finishing;
    };
    const offCompleted = q.onEvent((e) => {
      if (e.event === 'MIGRATION' && e.data?.status === 'completed') void startFinish();
    });
    try {
      try {
        tMigrate = Date.now();
        await q.execute('migrate', { uri: incoming.uri });
        const m = await pollMigration(q, opts.timeoutMs ?? 120_000, (r) => opts.onProgress?.(migrationProgress(r)));
        if (m.status === 'timeout') {
          await q.execute('migrate_cancel').catch(() => undefined);
          await pollMigration(q, 30_000);
        }
        if (m.status === 'completed') {
          tCompleted = Date.now();
          // The target runs once it has loaded the state; meanwhile the source (its disks already
          // released by QEMU at completion) quits, and the armed clean-up waits for its process
          // to end and removes its files.
          retired = (async () => {
            await q.execute('quit').catch(() => undefined);
            const pid = (await source.catch(() => undefined))?.pid;
            if (pid) return cleanup.release(pid);
            await cleanup.disarm();
            await this.destroy(name); // its pid could not be read: find and retire it afresh
          })();
          retired.catch(() => undefined);
          await startFinish();
          tSwitched = Date.now();
        }
        fin = m;
      } finally {
        offCompleted();
        q.close();
      }
    } catch (err) {
      fin = { status: 'failed', 'error-desc': (err as Error).message };
    } finally {
      this.outgoing.delete(name);
    }
    if (fin.status !== 'completed') {
      await cleanup.disarm();
      this.specCache.delete(name); // in case it was stale: the next attempt reads the spec file
      await incoming.abort().catch(() => undefined);
      await this.ensureRunning(name).catch(() => undefined);
      const why = fin.status === 'timeout' ? `did not finish within ${opts.timeoutMs ?? 120_000} ms and was cancelled` : fin.status;
      const msg = `migrating ${name} from ${this.node} to ${target.node} ${why}${fin['error-desc'] ? `: ${fin['error-desc']}` : ''}; it keeps running on ${this.node}`;
      throw fin.status === 'cancelled' ? new MigrationCancelledError(msg) : new MigrationFailedError(msg);
    }
    await retired;
    const tEnd = Date.now();
    return {
      downtimeMs: fin.downtime ?? 0,
      totalMs: fin['total-time'] ?? 0,
      endToEndMs: tEnd - t0,
      transferredBytes: fin.ram?.transferred ?? 0,
      phasesMs: { prepare: tMigrate - t0, transfer: tCompleted - tMigrate, switchover: tSwitched - tCompleted, cleanup: tEnd - tSwitched },
      preparedMs: p.preparedMs,
    };
  }

  /** After a failed migration QEMU resumes a running source by itself; this covers the rest. */
  private async ensureRunning(name: string): Promise<void> {
    await this.withQmp(name, 'ctl', async (q) => {
      const st = await q.execute<{ running: boolean; status: string }>('query-status');
      if (!st.running && st.status !== 'shutdown') await q.execute('cont');
    });
  }

  async cancelMigration(name: string): Promise<boolean> {
    validateDomainName(name);
    const [e] = await this.procEntries(name);
    if (!e?.alive) return false;
    return this.withQmp(name, 'ctl', async (q) => {
      const m = await q.execute<QueryMigrate>('query-migrate');
      if (!m.status || !MIGRATION_ACTIVE.has(m.status)) return false;
      try {
        await q.execute('migrate_cancel');
      } catch (err) {
        if (err instanceof QmpError) return false;
        throw err;
      }
      return true;
    });
  }
}
