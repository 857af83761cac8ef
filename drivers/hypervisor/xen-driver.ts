// XenDriver: the HypervisorDriver contract (types.ts) with Xen's `xl` toolstack on one node, through
// the node's Transport (what it writes for xl in xen-config.ts, the scripts it installs or runs in
// xen-scripts.ts and xen-vif-script.ts, how it reads xl's output in xl-output.ts). Each domain gets an xl configuration generated from the same DomainSpec as
// QEMU (renderXlConfig: PVH where the node's Xen has HAP, else PV; direct kernel boot with the OSTemplate's kernel and
// initrd, disks xvda/xvdb/xvdc, a routed vif with the guest's IP, the 9pfs share), written to
// `<runRoot>/<name>.cfg`, and `xl create | shutdown | destroy | save | restore | migrate | list -l`.
//
// Run for real on full testbed nodes (Xen 4.17, Debian dom0 under QEMU TCG:
// test/hypervisor/xen-driver.full.test.ts). What the dom0 taught:
// - disks go through blkback with our own hotplug script (`<runRoot>/vl-block`, XEN_BLOCK_SCRIPT:
//   a block device as it is, qemu-nbd for a qcow2 file, losetup for a raw one; a few execs), not
//   Xen's `block` script: that one is bash with dozens of execs, and under TCG it ran past libxl's
//   hotplug timeout ("killing execution of /etc/xen/scripts/block add because of timeout"); and
//   not qdisk, which needs QEMU in dom0 (the node image has only qemu-utils);
// - `xl save` cannot write to a 9p file (EFAULT: page data is written from foreign mappings), so
//   suspend saves to `saveDir` on the node's own disk and then moves the file to its place;
// - the state of a domain that powered off (on_poweroff = destroy: xl forgets it) is its
//   configuration file: list() reports such a domain as shutoff until destroy removes the file;
// - live migration is `xl migrate` from the source, which runs `ssh <target> xl migrate-receive`
//   itself: `-s` carries our own ssh command line (a per-node key made on first use, allowed on the
//   target only to run `xl migrate-receive`, and a known_hosts file with the target's host key read
//   over the target's own pinned Transport; StrictHostKeyChecking=yes, never accept-new). xl
//   prints no downtime: we run `xl -vvv migrate` and take the time from libxl's suspend request
//   to the target's "Domain started" line as they reach us (XlLineClock; -1 when xl printed
//   neither); totalMs is our measured time. Debian's Xen 4.17 is built without shadow paging,
//   which PV log-dirty (hence every live migration of a PV guest) needs: there xl fails with
//   "Failed to enable logdirty: 95" and the guest keeps running on the source; the error says so
//   (MigrationFailedError). A PVH guest gets log-dirty from HAP instead: the full nodes' CPU model
//   gives Xen AMD SVM with nested paging under TCG (hack/lib/full-node.ts), and the driver makes
//   PVH guests wherever `xl info` lists hap (guestType auto). Under TCG the copy runs at ~2.5 MB/s
//   (ssh in a PV dom0, whatever the cipher: the receiving sshd's syscalls), and of the downtime
//   (6.6-8.5 s at load 7-15) about half is the target attaching the disks after the last round
//   (libxl runs the block script then); a failed migration's incoming domain left on the target
//   (its xl migrate-receive killed) is destroyed here; our copy of the configuration follows the
//   domain to the target;
// - the console log of a domain that arrived by live migration keeps xenconsoled's name for it
//   while incoming: `guest-<name>--incoming.log` (consoleLogPaths);
// - cancelling a migration ends the `xl migrate` process; xl then resumes the domain on the source;
// - past xl's point of no return (it renames the source's copy `<name>--migratedaway` once the
//   target reports the whole domain received, then tells it to start) a broken handshake or a
//   killed xl leaves that copy suspended ("Domain state is now undefined"), and the target's
//   complete copy paused as `<name>--incoming` when its xl migrate-receive died too. `xl unpause`
//   does not revive the suspended copy (xl exits 0, libxl logs "Unpausing domain: Invalid
//   argument", it stays `---ss-`); `xl save -c` does (it saves, then libxl_domain_resume cancels
//   the suspend: the guest runs on, memory kept; ~70 s for 128 MiB under TCG). settleMigration
//   (after a failed xl migrate, and from the migration controller when no manager watched):
//   the target's complete copy is renamed and unpaused, else ours is resumed, else started again
//   from its disks; list() shows such a copy, no xl migrate sending it, as paused (STRANDED);
// - an `xl migrate` outlives the manager that started it (xl ignores SIGPIPE, and sshd leaves a
//   command without a pty running when its connection goes): a marker `<runRoot>/<name>.migrating`
//   (the target's address) lives while it runs, so the source lists the domain as migrating while
//   an `xl migrate` of it runs there (read with ps only when a marker exists), and a next manager
//   waits for the transfer to end (or cancels it: cancelMigration ends that process) instead of
//   taking the domain for one that is not migrating;
// - the console is the log xenconsoled writes when started with `--log=guest`
//   (`<consoleLogDir>/guest-<name>.log`).

import { setTimeout as sleep } from 'node:timers/promises';
import { execOk, TransportError, type SpawnedProcess, type Transport } from '../transport/types.js';
import { readConsoleLog } from './console-log.js';
import { XEN_VIF_SCRIPT } from './xen-vif-script.js';
import { configDiskPaths, diskPaths, migrationSshCommand, renderXlConfig, shellSafe } from './xen-config.js';
import { CREATE_WITH_DISKS, RESTORE_WITH_DISKS, XEN_BLOCK_SCRIPT, XEN_MIGRATE_RECEIVE_SCRIPT, XL_LIST_SCRIPT } from './xen-scripts.js';
import { parseXlListLong, parseXlListTable, splitMigrationName, splitStatusSections, stateFromLetters, XlLineClock } from './xl-output.js';
import {
  HypervisorError,
  MigrationCancelledError,
  MigrationFailedError,
  MigrationSettledError,
  MigrationStrandedError,
  SwitchoverError,
  validateDomainName,
  type ConsoleChunk,
  type ConsoleReadOptions,
  type DomainInfo,
  type DomainSpec,
  type HypervisorDriver,
  type MigrateOptions,
  type MigrationResult,
  type PreparedMigration,
  type ShutdownOptions,
  type ShutdownResult,
  type SuspendResult,
  STRANDED_DETAILS,
  type MigrationSettlement,
} from './types.js';

export interface XenDriverOptions {
  transport: Transport;
  /** Where the generated xl configurations live on the node. */
  runRoot: string;
  /** The address other nodes' `xl migrate` reaches this node at (over SSH). */
  migrationAddress: string;
  /**
   * Guest type of a domain with its own kernel; default auto: PVH when the node's Xen has hardware
   * assisted paging (`xl info` virt_caps has hap: live migration needs it, this Xen has no shadow
   * paging for PV log-dirty), else PV.
   */
  guestType?: 'pvh' | 'pv' | 'auto';
  /** Where `xl save` writes before the file moves to its place (the node's own disk); default /var/lib/xen. */
  saveDir?: string;
  /** Where xenconsoled writes guest console logs; default /var/log/xen/console. */
  consoleLogDir?: string;
  /** Passed to `xl migrate -s`; default: our own pinned ssh command line (migrationSshCommand). */
  sshCommand?: string;
}



/** The marker of an outgoing `xl migrate` (`<runRoot>/<name>.migrating`). */
const MIGRATING = '.migrating';
/** The marker of a migration to this node, made by prepareMigration (`<runRoot>/<name>.incoming`). */
const INCOMING = '.incoming';

/** xl's stranded copies in DomainInfo.detail (types.ts STRANDED_DETAILS): past, and before, xl's point of no return. */
const [STRANDED, STRANDED_SUSPENDED] = STRANDED_DETAILS;

/** flock's exit code when another `xl create` of the same domain holds its lock. */
const CREATE_LOCKED = 75;

export class XenDriver implements HypervisorDriver {
  readonly kind = 'xen' as const;
  /** `xl migrate -p` leaves the domain paused on the target: MigrateOptions.beforeResume runs, then `xl unpause`. */
  readonly pausedSwitchover = true;
  readonly transport: Transport;
  readonly node: string;
  readonly runRoot: string;
  readonly migrationAddress: string;
  private readonly guestTypeOpt: 'pvh' | 'pv' | 'auto';
  private guestTypeFound?: 'pvh' | 'pv';
  private readonly consoleLogDir: string;
  private readonly saveDir: string;
  private readonly sshCommand?: string;
  private readonly outgoing = new Map<string, SpawnedProcess>();
  private readonly cancelled = new Set<string>();
  private scriptsInstalled = false;
  /** The lines of the last `xl -vvv migrate` from this node, stamped as they arrived (benchmarks read it). */
  lastMigrationLines?: XlLineClock;

  constructor(opts: XenDriverOptions) {
    this.transport = opts.transport;
    this.node = opts.transport.host;
    this.runRoot = opts.runRoot.replace(/\/+$/, '');
    this.migrationAddress = opts.migrationAddress;
    this.guestTypeOpt = opts.guestType ?? 'auto';
    this.consoleLogDir = opts.consoleLogDir ?? '/var/log/xen/console';
    this.saveDir = (opts.saveDir ?? '/var/lib/xen').replace(/\/+$/, '');
    this.sshCommand = opts.sshCommand;
  }

  configPath(name: string): string {
    return `${this.runRoot}/${name}.cfg`;
  }

  /** Our block hotplug script on this node (same path on every node: runRoot). */
  get blockScript(): string {
    return `${this.runRoot}/vl-block`;
  }

  /** The forced command of other nodes' migration keys here (XEN_MIGRATE_RECEIVE_SCRIPT). */
  get receiveScript(): string {
    return `${this.runRoot}/vl-migrate-receive`;
  }

  /** Our vif hotplug script (xen-vif-script.ts): the vif on the routed per-VC network, fail closed. */
  get vifScript(): string {
    return `${this.runRoot}/vl-vif`;
  }

  consoleLogPath(name: string): string {
    return `${this.consoleLogDir}/guest-${name}.log`;
  }

  /**
   * Every console log a domain of this name may have here: xenconsoled names the log of a domain
   * that arrived by live migration after the name it had while incoming (`<name>--incoming`).
   */
  consoleLogPaths(name: string): string[] {
    return [this.consoleLogPath(name), `${this.consoleLogDir}/guest-${name}--incoming.log`];
  }

  async list(): Promise<DomainInfo[]> {
    // One command for the three reads (xen-scripts.ts XL_LIST_SCRIPT), in the order they were
    // issued one by one: `xl list -l`, the table, the run directory.
    const r = await this.transport.exec(['sh', '-c', XL_LIST_SCRIPT, 'sh', this.runRoot, MIGRATING, INCOMING]);
    let sections: { out: string; code: number }[];
    try {
      sections = splitStatusSections(r.stdout, 3);
    } catch (err) {
      throw new TransportError(`${this.node}: listing domains (xl list -l, xl list, find ${this.runRoot}) exited ${r.code}${r.signal ? ` (${r.signal})` : ''}: ${r.stderr.trim() || (err as Error).message}`);
    }
    const [longOut, tableOut, findOut] = sections as [typeof sections[0], typeof sections[0], typeof sections[0]];
    if (longOut.code !== 0) throw new TransportError(`${this.node}: \`xl list -l\` exited ${longOut.code}: ${r.stderr.trim() || longOut.out.trim()}`);
    const long = parseXlListLong(longOut.out);
    // A domain that powered off is gone from xl (on_poweroff = destroy); its configuration file
    // stays until destroy: it is listed as shut off, its console log still readable.
    const files = findOut.code !== 0 ? [] : findOut.out.split('\n').filter(Boolean);
    // The table gives the state letters of what `xl list -l` lists, and a domain being received,
    // which has no configuration yet (xl -l leaves it out): read for that only when xl -l listed
    // nothing but a migration to here was prepared, as when the table was a command of its own.
    const tableWanted = long.length > 0 || files.some((f) => f.endsWith(INCOMING));
    if (tableWanted && tableOut.code !== 0) throw new TransportError(`${this.node}: \`xl list\` exited ${tableOut.code}: ${r.stderr.trim() || tableOut.out.trim()}`);
    const table = tableWanted ? parseXlListTable(tableOut.out) : new Map<string, { letters: string; domid: number }>();
    const live = long.map((e): DomainInfo => {
      const xlName = e.config?.c_info?.name ?? `domid-${e.domid}`;
      const { name, state } = splitMigrationName(xlName);
      const letters = table.get(xlName)?.letters;
      const b = e.config?.b_info;
      return {
        name,
        state: state ?? stateFromLetters(letters),
        detail: letters,
        pid: e.domid,
        vcpus: b?.max_vcpus,
        memoryMiB: b?.max_memkb ? Math.round(b.max_memkb / 1024) : undefined,
      };
    });
    const listed = new Set(long.map((e) => e.config?.c_info?.name));
    for (const [xlName, e] of table) {
      const { name, state } = splitMigrationName(xlName);
      if (state && !listed.has(xlName)) live.push({ name, state, detail: e.letters, pid: e.domid });
    }
    const markers = files.filter((f) => f.endsWith(MIGRATING)).map((f) => f.slice(this.runRoot.length + 1, -MIGRATING.length));
    const away = live.filter((d) => d.state === 'migrating');
    if (markers.length || away.length) {
      const sending = new Set((await this.outgoingXl()).map((o) => o.name));
      // Whatever xl's letters say while its xl migrate runs: at the switchover the source is
      // suspended (`s`, else read as shut off) before xl renames it <name>--migratedaway, and a
      // manager that took that moment for "nothing in flight" undid a migration that completed.
      for (const d of live) if (d.state !== 'incoming' && markers.includes(d.name) && sending.has(d.name)) d.state = 'migrating';
      // <name>--migratedaway with no xl migrate of it left: stranded past xl's point of no return
      // (suspended, not migrating any more): settleMigration decides where the VM runs
      for (const d of away) if (!sending.has(d.name)) Object.assign(d, { state: 'paused', detail: STRANDED });
      // suspended (`s`) by an xl migrate that died before renaming it, its marker kept: stranded too
      for (const d of live) {
        if (d.state === 'shutoff' && d.pid !== undefined && d.detail?.includes('s') && markers.includes(d.name) && !sending.has(d.name)) Object.assign(d, { state: 'paused', detail: STRANDED_SUSPENDED });
      }
    }
    const names = new Set(live.map((d) => d.name));
    const off = files.filter((f) => f.endsWith('.cfg'))
      .map((f) => f.slice(this.runRoot.length + 1, -'.cfg'.length))
      .filter((n) => !names.has(n))
      .map((name): DomainInfo => ({ name, state: 'shutoff' }));
    return [...live, ...off];
  }

  /** The `xl migrate` processes running on this node: pid and the domain each sends. */
  private async outgoingXl(): Promise<{ pid: number; name: string }[]> {
    const ps = await this.transport.exec(['ps', '-eo', 'pid=,args=']);
    const out: { pid: number; name: string }[] = [];
    for (const line of ps.stdout.split('\n')) {
      // xl [-vvv] migrate [-p] -s <ssh command, spaces in it> <name> <target address>
      const m = /^\s*(\d+)\s+\S*\bxl(?: -v+)? migrate (?:-p )?-s .* (\S+) \S+$/.exec(line);
      if (m) out.push({ pid: Number(m[1]), name: m[2]! });
    }
    return out;
  }

  private migratingMarker(name: string): string {
    return `${this.runRoot}/${name}${MIGRATING}`;
  }

  private incomingMarker(name: string): string {
    return `${this.runRoot}/${name}${INCOMING}`;
  }

  /** The name xl knows a listed domain by: mid-migration `<name>--incoming` or `<name>--migratedaway`. */
  private xlName(d: DomainInfo): string {
    if (d.state === 'incoming') return `${d.name}--incoming`;
    return d.state === 'migrating' || (d.state === 'paused' && d.detail === STRANDED) ? `${d.name}--migratedaway` : d.name;
  }

  async get(name: string): Promise<DomainInfo | undefined> {
    validateDomainName(name);
    return (await this.list()).find((d) => d.name === name);
  }

  private async installScripts(): Promise<void> {
    if (this.scriptsInstalled) return;
    await execOk(this.transport, ['mkdir', '-p', this.runRoot]);
    await this.transport.writeFile(this.blockScript, XEN_BLOCK_SCRIPT);
    await this.transport.writeFile(this.vifScript, XEN_VIF_SCRIPT);
    await this.transport.writeFile(this.receiveScript, XEN_MIGRATE_RECEIVE_SCRIPT);
    await execOk(this.transport, ['chmod', '755', this.blockScript, this.vifScript, this.receiveScript]);
    this.scriptsInstalled = true;
  }

  /** The guest type this node's domains get (guestType option; auto asks `xl info` once). */
  async guestType(): Promise<'pvh' | 'pv'> {
    if (this.guestTypeOpt !== 'auto') return this.guestTypeOpt;
    if (!this.guestTypeFound) {
      const caps = /^virt_caps\s*:(.*)$/m.exec(await execOk(this.transport, ['xl', 'info'], { timeoutMs: 120_000 }))?.[1] ?? '';
      this.guestTypeFound = /\bhap\b/.test(caps) ? 'pvh' : 'pv';
    }
    return this.guestTypeFound;
  }

  private async writeConfig(spec: DomainSpec): Promise<string> {
    await this.installScripts();
    const cfg = this.configPath(spec.name);
    await this.transport.writeFile(cfg, renderXlConfig(spec, { guestType: await this.guestType(), blockScript: this.blockScript, vifScript: this.vifScript }));
    return cfg;
  }

  async create(spec: DomainSpec): Promise<DomainInfo> {
    const cur = await this.get(spec.name);
    if (cur && cur.state !== 'shutoff') return cur;
    if (cur?.pid !== undefined) await execOk(this.transport, ['xl', 'destroy', spec.name]);
    return this.createFrom(spec.name, await this.writeConfig(spec), diskPaths(spec));
  }

  /** xl create of `name` from its configuration file `cfg` here, its disk files `disks` attached first. */
  private async createFrom(name: string, cfg: string, disks: string[]): Promise<DomainInfo> {
    const logs = this.consoleLogPaths(name);
    // One xl create per domain at a time, held by a lock on the node: an earlier start whose caller
    // gave up waiting (a loaded TCG dom0 took over 5 min: kernel over 9p, qemu-nbd) may still be
    // building the domain, which xl lists without its name meanwhile. A second xl create would fail
    // on the name and its clean-up would destroy the domain the first one is building; a second
    // start while the lock is held is refused instead, and the caller looks again later.
    const r = await this.transport.exec(
      // inside the lock: the console logs go, the disks are attached (vl-block prepare: no hotplug
      // timeout on qemu-nbd), xl create, and what no domain took is detached again
      ['flock', '-n', '-E', String(CREATE_LOCKED), `${cfg}.lock`, 'sh', '-c', CREATE_WITH_DISKS, 'sh', this.blockScript, cfg, String(logs.length), ...logs, ...disks],
      { timeoutMs: 900_000 },
    );
    if (r.code === CREATE_LOCKED) throw new HypervisorError(`${this.node}: ${name} is still being created by an earlier xl create (lock ${cfg}.lock); look again when it ends`);
    if (r.code !== 0) {
      // libxl destroys what it built; a domain it could not tear down is destroyed here
      if ((await this.get(name))?.pid !== undefined) await this.transport.exec(['xl', 'destroy', name]);
      throw new HypervisorError(`${this.node}: xl create ${name} failed: ${r.stderr.trim()}; see ${cfg} and /var/log/xen/xl-${name}.log`);
    }
    const info = await this.get(name);
    if (!info || info.state === 'shutoff') throw new HypervisorError(`${this.node}: ${name} is not running right after xl create`);
    return info;
  }

  async destroy(name: string): Promise<void> {
    validateDomainName(name);
    const cur = await this.get(name);
    if (cur?.pid !== undefined) {
      // mid-migration xl names it <name>--incoming or <name>--migratedaway: destroyed by that name,
      // so a domain renamed meanwhile (its migration completed: it runs now) is never destroyed here
      const xlName = this.xlName(cur);
      const r = await this.transport.exec(['xl', 'destroy', xlName], { timeoutMs: 120_000 });
      if (r.code !== 0 && (await this.get(name))?.pid !== undefined) throw new HypervisorError(`${this.node}: xl destroy ${name} failed: ${r.stderr.trim()}`);
    }
    await execOk(this.transport, ['rm', '-f', '--', this.configPath(name), `${this.configPath(name)}.lock`, this.migratingMarker(name), this.incomingMarker(name), ...this.consoleLogPaths(name)]);
  }

  async shutdown(name: string, opts: ShutdownOptions = {}): Promise<ShutdownResult> {
    validateDomainName(name);
    if ((await this.get(name))?.pid === undefined) return { clean: true };
    await this.transport.exec(['xl', 'shutdown', name]);
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    while (Date.now() < deadline) {
      if ((await this.get(name))?.pid === undefined) return { clean: true };
      await sleep(500);
    }
    await this.transport.exec(['xl', 'destroy', name], { timeoutMs: 120_000 });
    return { clean: false };
  }

  async suspend(name: string, file: string): Promise<SuspendResult> {
    validateDomainName(name);
    if ((await this.get(name))?.pid === undefined) throw new HypervisorError(`${this.node}: cannot suspend ${name}: it is not running here`);
    // xl save cannot write to a 9p file (EFAULT): save on the node's disk, then move into place
    const local = `${this.saveDir}/${name}.save`;
    const t0 = Date.now();
    await execOk(this.transport, ['mkdir', '-p', this.saveDir]);
    const r = await this.transport.exec(['xl', 'save', name, local], { timeoutMs: 600_000 });
    if (r.code !== 0) {
      await this.transport.exec(['rm', '-f', '--', local]);
      throw new HypervisorError(`${this.node}: xl save ${name} failed (the domain keeps running): ${r.stderr.trim()}`);
    }
    const durationMs = Date.now() - t0;
    const mv = await this.transport.exec(['sh', '-c', 'mv -f "$1" "$2.partial" && mv -f "$2.partial" "$2" && stat -c %s "$2"', 'sh', local, file], { timeoutMs: 600_000 });
    if (mv.code !== 0) {
      // the domain is saved but its state could not be moved: start it again from the local file
      const back = await this.transport.exec(['xl', 'restore', this.configPath(name), local], { timeoutMs: 600_000 });
      await this.transport.exec(['rm', '-f', '--', local, `${file}.partial`]);
      throw new HypervisorError(`${this.node}: moving ${name}'s saved state to ${file} failed: ${mv.stderr.trim()}; ${back.code === 0 ? 'restored it here (the domain keeps running)' : `restoring it here failed too: ${back.stderr.trim()}`}`);
    }
    // the domain is ended: its files go, as after a migration
    await this.transport.exec(['rm', '-f', '--', this.configPath(name), ...this.consoleLogPaths(name)]);
    return { file, bytes: Number(mv.stdout.trim()), durationMs };
  }

  async resume(spec: DomainSpec, file: string): Promise<DomainInfo> {
    const cur = await this.get(spec.name);
    if (cur && cur.state !== 'shutoff') return cur;
    const cfg = await this.writeConfig(spec);
    await execOk(this.transport, ['rm', '-f', '--', ...this.consoleLogPaths(spec.name)]);
    const r = await this.transport.exec(['sh', '-c', RESTORE_WITH_DISKS, 'sh', this.blockScript, cfg, file, ...diskPaths(spec)], { timeoutMs: 600_000 });
    if (r.code !== 0) throw new HypervisorError(`${this.node}: xl restore ${spec.name} from ${file} failed (the file is kept): ${r.stderr.trim()}`);
    await execOk(this.transport, ['rm', '-f', '--', file]);
    const info = await this.get(spec.name);
    if (!info || info.pid === undefined) throw new HypervisorError(`${this.node}: ${spec.name} is not listed right after xl restore`);
    return info;
  }

  /**
   * Lets this node's xl reach the target's `xl migrate-receive` over SSH: a key of this node's own
   * (made once), allowed on the target only to run our `vl-migrate-receive` (xl migrate-receive,
   * with -p when the source asked for it), and the target's host key (read over the target's own
   * pinned Transport) as the only entry of a known_hosts file. Returns the `-s` command line.
   */
  private async prepareMigrationSsh(target: XenDriver): Promise<string> {
    if (this.sshCommand !== undefined) return this.sshCommand;
    const identity = `${this.runRoot}/migration_ed25519`;
    const knownHosts = `${this.runRoot}/known_hosts.${shellSafe('target address', target.migrationAddress)}`;
    await execOk(this.transport, ['mkdir', '-p', this.runRoot]);
    const pub = (await execOk(this.transport, ['sh', '-c', '[ -s "$1" ] || ssh-keygen -q -t ed25519 -N "" -C "$2" -f "$1" </dev/null >/dev/null && cat "$1.pub"', 'sh', identity, `vl-xen-migration@${this.node}`], { timeoutMs: 120_000 })).trim();
    const hostKey = (await execOk(target.transport, ['cat', '/etc/ssh/ssh_host_ed25519_key.pub'])).trim().split(/\s+/).slice(0, 2).join(' ');
    if (!/^ssh-ed25519 [A-Za-z0-9+/=]+$/.test(hostKey)) throw new HypervisorError(`${target.node}: unexpected SSH host key ${JSON.stringify(hostKey)}`);
    await this.transport.writeFile(knownHosts, `${target.migrationAddress} ${hostKey}\n`);
    const line = `restrict,command="${shellSafe('migrate-receive script', target.receiveScript)}" ${pub}`;
    // one line for our key: an older line (another forced command) would win, being first
    await execOk(target.transport, ['sh', '-c', 'f=/root/.ssh/authorized_keys; mkdir -p -m 700 /root/.ssh && touch "$f" && { grep -qxF -- "$1" "$f" || { grep -vF -- "$2" "$f" > "$f.vl"; printf "%s\\n" "$1" >> "$f.vl" && mv -f "$f.vl" "$f"; }; }', 'sh', line, pub]);
    return migrationSshCommand(identity, knownHosts);
  }

  async migrate(name: string, target: HypervisorDriver, opts: MigrateOptions = {}): Promise<MigrationResult> {
    const t0 = Date.now();
    const r = await (await this.prepareMigration(name, target, opts)).run();
    const endToEndMs = Date.now() - t0;
    const { preparedMs: _, ...rest } = r;
    // the preparation is part of migrate()'s prepare phase
    const p = r.phasesMs!;
    return { ...rest, endToEndMs, phasesMs: { ...p, prepare: endToEndMs - p.transfer - p.switchover - p.cleanup } };
  }

  /**
   * Everything of a live migration that can happen while the domain runs on untouched: our ssh
   * key and the target's pinned host key, our scripts on the target, and the disk files that are
   * not qcow2 attached there (vl-block prepare-incoming: at the switchover libxl's hotplug then
   * takes them as they are instead of losetup-ing each while the guest is stopped).
   */
  async prepareMigration(name: string, target: HypervisorDriver, opts: MigrateOptions = {}): Promise<PreparedMigration> {
    validateDomainName(name);
    if (!(target instanceof XenDriver)) throw new HypervisorError(`cannot migrate ${name} from Xen to a ${target.kind} node`);
    if ((await this.get(name))?.pid === undefined) throw new HypervisorError(`${this.node}: cannot migrate ${name}: it is not running here`);
    if (this.outgoing.has(name)) throw new HypervisorError(`${this.node}: ${name} is already migrating`);
    const onTarget = await target.get(name);
    if (onTarget && onTarget.state !== 'shutoff' && onTarget.state !== 'incoming') throw new HypervisorError(`${target.node}: a domain ${name} runs there already`);
    const t0 = Date.now();
    const ssh = await this.prepareMigrationSsh(target);
    // the target's xl runs our block script from the configuration xl sends along
    await target.installScripts();
    // the target lists the domain while it is being received (list: xl -l leaves it out then)
    await target.transport.writeFile(target.incomingMarker(name), `${this.node}\n`);
    // xl sends the configuration in the stream; our copy of it (list's shut-off state, destroy's
    // clean-up) follows the domain to the target once it runs there
    const cfgRead = await this.transport.exec(['cat', '--', this.configPath(name)]);
    const cfg = cfgRead.code === 0 ? cfgRead.stdout : undefined;
    const disks = cfg === undefined ? [] : configDiskPaths(cfg);
    const unprepare = async (): Promise<void> => {
      if (disks.length) await target.transport.exec([target.blockScript, 'unprepare', ...disks], { timeoutMs: 120_000 }).catch(() => undefined);
    };
    if (disks.length) {
      const r = await target.transport.exec([target.blockScript, 'prepare-incoming', ...disks], { timeoutMs: 600_000 });
      if (r.code !== 0) {
        await unprepare();
        throw new HypervisorError(`${target.node}: preparing ${name}'s disks for the incoming domain failed: ${r.stderr.trim()}`);
      }
    }
    const preparedMs = Date.now() - t0;
    let used = false;
    return {
      preparedMs,
      run: async () => {
        if (used) throw new HypervisorError(`the prepared migration of ${name} was already used`);
        used = true;
        try {
          return { ...(await this.runMigration(name, target, ssh, cfg, opts)), preparedMs };
        } finally {
          await unprepare();
        }
      },
      abort: async () => {
        if (used) return;
        used = true;
        await unprepare();
      },
    };
  }

  private async runMigration(name: string, target: XenDriver, ssh: string, cfg: string | undefined, opts: MigrateOptions): Promise<MigrationResult> {
    const t1 = Date.now();
    const paused = opts.beforeResume !== undefined;
    // -vvv: libxl's debug lines include the moment it asks the guest to suspend (downtime's start);
    // -p: the domain waits paused on the target (the switchover hook runs, then xl unpause)
    const argv = ['xl', '-vvv', 'migrate', ...(paused ? ['-p'] : []), '-s', ssh, name, target.migrationAddress];
    // default 15 min, not the contract's 2: under TCG the copy alone runs at ~2.5 MB/s (ssh in a
    // PV dom0 whose every syscall goes through an emulated Xen), minutes for 128 MiB under load
    await this.transport.writeFile(this.migratingMarker(name), `${target.migrationAddress}\n`);
    const p = this.transport.spawn(argv, { timeoutMs: opts.timeoutMs ?? 900_000 });
    this.outgoing.set(name, p);
    const lines = new XlLineClock();
    this.lastMigrationLines = lines;
    p.stderr.on('data', (b: Buffer) => lines.add(b.toString()));
    p.stdout.on('data', (b: Buffer) => lines.add(b.toString()));
    let code: number;
    try {
      code = (await p.done).code;
    } catch (err) {
      code = -1;
      lines.add(`\n${(err as Error).message}\n`);
    } finally {
      this.outgoing.delete(name);
    }
    const stderr = lines.text(/\bdebug: |^xc: detail: /);
    const wasCancelled = this.cancelled.delete(name);
    if (code !== 0) {
      // past xl's point of no return (our copy renamed <name>--migratedaway, suspended): settled
      // here, the VM then runs on exactly one side
      let settled: MigrationSettlement | undefined;
      try {
        settled = await this.settleMigration(name, target, { beforeResume: opts.beforeResume });
      } catch (err) {
        if (err instanceof SwitchoverError) throw err;
        throw new MigrationStrandedError(`migrating ${name} from ${this.node} to ${target.node} ${wasCancelled ? 'cancelled' : 'failed'} and settling it failed: ${(err as Error).message}; it is settled again from what both nodes hold`, { cause: err });
      }
      if (settled?.movedToTarget) {
        const t2 = Date.now();
        return { downtimeMs: lines.sinceSuspendMs(), totalMs: t2 - t1, endToEndMs: t2 - t1, transferredBytes: 0, phasesMs: { prepare: 0, transfer: t2 - t1, switchover: 0, cleanup: 0 } };
      }
      if (settled) throw new MigrationSettledError(`migrating ${name} from ${this.node} to ${target.node} ${wasCancelled ? 'cancelled' : 'failed'}: ${settled.message}; xl said: ${stderr.trim().split('\n').slice(-12).join(' | ')}`, settled);
      // the target's xl migrate-receive ends its incoming domain when the stream breaks, but not
      // when it was killed itself: nothing of the domain may stay on the target. (`xl list -l`
      // leaves such a domain out, having no configuration for it yet: destroy it by its name.)
      await target.transport.exec(['xl', 'destroy', `${name}--incoming`], { timeoutMs: 120_000 }).catch(() => undefined);
      await this.transport.exec(['rm', '-f', '--', this.migratingMarker(name)]).catch(() => undefined);
      const why = /Failed to enable logdirty: 95/.test(stderr)
        ? `this Xen cannot live-migrate a PV guest: log-dirty mode is not supported (Xen built without shadow paging); ${name} keeps running on ${this.node}`
        : `xl resumes it on ${this.node}`;
      const msg = `migrating ${name} from ${this.node} to ${target.node} ${wasCancelled ? 'cancelled' : 'failed'}: ${why}; xl said: ${stderr.trim().split('\n').slice(-12).join(' | ')}`;
      throw wasCancelled ? new MigrationCancelledError(msg) : new MigrationFailedError(msg);
    }
    let downtimeMs = lines.downtimeMs();
    if (paused) {
      // the domain waits paused on the target, the source's copy is gone: the hook, then it runs
      await this.unpauseOnTarget(name, target, opts.beforeResume);
      downtimeMs = lines.sinceSuspendMs();
    }
    const t2 = Date.now();
    await this.handOverFiles(name, target, cfg);
    const t3 = Date.now();
    return {
      downtimeMs,
      totalMs: t2 - t1,
      endToEndMs: t3 - t1,
      transferredBytes: 0,
      phasesMs: { prepare: 0, transfer: t2 - t1, switchover: 0, cleanup: t3 - t2 },
    };
  }

  /** The domain waits paused on the target, our copy gone: the switchover hook (if any), then `xl unpause` there. */
  private async unpauseOnTarget(name: string, target: XenDriver, beforeResume?: () => Promise<void>): Promise<void> {
    try {
      await beforeResume?.();
    } catch (err) {
      throw new SwitchoverError(`${name} is paused on ${target.node} (its copy on ${this.node} is gone): the switchover hook failed, so it was not unpaused: ${(err as Error).message}`);
    }
    const u = await target.transport.exec(['xl', 'unpause', name], { timeoutMs: 120_000 });
    if (u.code !== 0) throw new SwitchoverError(`${name} is paused on ${target.node} (its copy on ${this.node} is gone): xl unpause failed: ${u.stderr.trim()}`);
  }

  /** The domain runs on the target: our configuration follows it there, our files of it go. */
  private async handOverFiles(name: string, target: XenDriver, cfg: string | undefined): Promise<void> {
    if (cfg !== undefined) await target.transport.writeFile(target.configPath(name), cfg).catch(() => undefined);
    await this.transport.exec(['rm', '-f', '--', this.configPath(name), `${this.configPath(name)}.lock`, this.migratingMarker(name), this.incomingMarker(name), ...this.consoleLogPaths(name)]);
  }

  /**
   * Waits (up to `timeoutMs`) until no `xl migrate-receive` answers a migration here any more: one
   * whose source's xl died still answers the broken handshake, and may destroy its copy as it ends.
   * (A domain received keeps a monitor forked by xl under the same command line, parented to init:
   * that one is left out.)
   */
  private async receiversEnded(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ps = await this.transport.exec(['ps', '-eo', 'ppid=,args=']);
      if (!ps.stdout.split('\n').some((l) => /^\s*(\d+)\s+\S*\bxl(?: -v+)? migrate-receive\b/.exec(l)?.[1] !== undefined && !/^\s*1\s/.test(l))) return;
      if (Date.now() > deadline) return;
      await sleep(1000);
    }
  }

  /**
   * Settles a migration of `name` to `target` that xl left past its point of no return: our copy
   * renamed `<name>--migratedaway` and suspended, and no `xl migrate` of it running any more (xl
   * was killed, or its handshake with the target broke: "Domain state is now undefined"). Exactly
   * one copy runs afterwards:
   * - the target's copy when it is complete: `<name>` there (it got xl's go), or `<name>--incoming`
   *   left paused by its `xl migrate-receive` (xl renames our copy only once the target has
   *   reported the whole domain received): renamed, the switchover hook (`beforeResume`), `xl
   *   unpause`; our copy is destroyed first;
   * - else the target's leftovers go and our copy is resumed here by `xl save -c` (save, then
   *   libxl_domain_resume cancelling the suspend: the one xl command that resumes a suspended
   *   domain; `xl unpause` does not) and renamed back, its memory kept; if that fails it is
   *   destroyed and started again from its configuration and disks here (its memory is lost).
   * Returns undefined when there is nothing to settle here.
   */
  async settleMigration(name: string, target: HypervisorDriver, opts: { beforeResume?: () => Promise<void> } = {}): Promise<MigrationSettlement | undefined> {
    validateDomainName(name);
    if (!(target instanceof XenDriver)) throw new HypervisorError(`cannot settle a migration of ${name} from Xen to a ${target.kind} node`);
    if (this.outgoing.has(name)) return undefined;
    const mine = await this.get(name);
    const renamed = mine?.state === 'paused' && mine.detail === STRANDED;
    if (!renamed && !(mine?.state === 'paused' && mine.detail === STRANDED_SUSPENDED)) return undefined;
    // before the rename the target never got xl's go: its copy is not trusted, ours is resumed
    const away = this.xlName(mine!);
    const what = renamed
      ? `xl migrate ended past its point of no return (${name} renamed ${away} on ${this.node}, suspended)`
      : `xl migrate ended before its point of no return, ${name} left suspended on ${this.node}`;
    const cfgRead = await this.transport.exec(['cat', '--', this.configPath(name)]);
    const cfg = cfgRead.code === 0 ? cfgRead.stdout : undefined;
    let there = await target.get(name);
    if (there?.state === 'incoming') {
      await target.receiversEnded();
      there = await target.get(name);
    }
    if (renamed && there && there.state !== 'shutoff') {
      if (there.state === 'incoming') {
        const r = await target.transport.exec(['xl', 'rename', `${name}--incoming`, name], { timeoutMs: 120_000 });
        if (r.code !== 0) throw new HypervisorError(`${what}: renaming the complete copy ${name}--incoming on ${target.node} failed: ${r.stderr.trim()}`);
      }
      const d = await this.transport.exec(['xl', 'destroy', away], { timeoutMs: 120_000 });
      if (d.code !== 0) throw new HypervisorError(`${what}: destroying it failed: ${d.stderr.trim()}`);
      if (there.state !== 'running') await this.unpauseOnTarget(name, target, opts.beforeResume);
      await this.handOverFiles(name, target, cfg);
      const how = there.state === 'incoming' ? `${name}--incoming, left paused by its xl migrate-receive` : there.state;
      return { runsOn: target.node, movedToTarget: true, memoryKept: true, message: `${what}; ${target.node} had the whole domain (${how}): it runs there now, the copy on ${this.node} was destroyed` };
    }
    // no complete copy on the target: its leftovers go, ours is resumed (or started again) here
    await target.destroy(name);
    const file = `${this.saveDir}/${name}.settle`;
    await execOk(this.transport, ['mkdir', '-p', this.saveDir]);
    const c = await this.transport.exec(['xl', 'save', '-c', away, file], { timeoutMs: 600_000 });
    await this.transport.exec(['rm', '-f', '--', file]);
    const back = c.code === 0 && (!renamed || (await this.transport.exec(['xl', 'rename', away, name], { timeoutMs: 120_000 })).code === 0);
    await this.transport.exec(['rm', '-f', '--', this.migratingMarker(name)]);
    const nowHere = back ? await this.get(name) : undefined;
    const lost = renamed ? `${target.node} had no complete copy (its leftovers were removed)` : `its copy on ${target.node} was removed`;
    if (nowHere?.state === 'running') {
      return { runsOn: this.node, movedToTarget: false, memoryKept: true, message: `${what}; ${lost}: the suspended copy was resumed on ${this.node} (xl save -c), its memory state kept` };
    }
    const why = c.code !== 0 ? `xl save -c failed: ${c.stderr.trim().split('\n').slice(-3).join(' | ')}` : `it did not run after xl save -c (${nowHere?.state ?? 'not listed'})`;
    await this.transport.exec(['xl', 'destroy', back ? name : away], { timeoutMs: 120_000 });
    if (cfg === undefined) {
      return { runsOn: undefined, movedToTarget: false, memoryKept: false, message: `${what}; ${lost}; the suspended copy could not be resumed (${why}) and was destroyed; no configuration of it is left on ${this.node} to start it again from` };
    }
    await this.createFrom(name, this.configPath(name), configDiskPaths(cfg));
    return { runsOn: this.node, movedToTarget: false, memoryKept: false, message: `${what}; ${lost}; the suspended copy could not be resumed (${why}): it was destroyed and the VM started again from its disks on ${this.node} (its memory state was lost)` };
  }

  async cancelMigration(name: string): Promise<boolean> {
    validateDomainName(name);
    const p = this.outgoing.get(name);
    if (!p) {
      // started by another manager (it ended meanwhile): the xl migrate running here is ended;
      // xl resumes the domain here when its stream breaks
      const pids = (await this.outgoingXl()).filter((o) => o.name === name).map((o) => String(o.pid));
      if (!pids.length) return false;
      await this.transport.exec(['kill', '--', ...pids]);
      return true;
    }
    this.cancelled.add(name);
    p.kill();
    return true;
  }

  async readConsole(name: string, opts: ConsoleReadOptions = {}): Promise<ConsoleChunk> {
    validateDomainName(name);
    return readConsoleLog(this.transport, this.consoleLogPaths(name), opts.fromOffset ?? 0);
  }
}
