// NfsServerDriver: makes the NFS exports one physical node serves equal to a wanted list, with one
// nfs-ganesha process per node, through the node's Transport with argument vectors only.
//
// Files (all under `<runRoot>/nfs/`): ganesha.conf, ganesha.pid, ganesha.log, recovery/.
//
// Contract:
// - apply(exports) is idempotent and converges from any starting point:
//   * no export wanted: stops our ganesha if it runs (SIGTERM, then SIGKILL after 10 s) and
//     leaves the files; `changed` says so.
//   * exports wanted: writes the config atomically when its text differs; starts ganesha when ours
//     does not run (log truncated first), else sends it SIGHUP when the config changed (ganesha
//     re-reads its exports in place: existing clients of unchanged exports keep their state).
//     Then it waits for ganesha to log its export list and fails unless that list is exactly the
//     wanted one (an export whose directory is missing is dropped by ganesha: fail, with its log).
// - "Ours" is the process in ganesha.pid whose /proc/PID/cmdline is `ganesha.nfsd -f <our conf>`:
//   a stale pid file or a reused pid is never signalled.
// - ganesha.nfsd missing on the node: NfsServerMissingError, naming the packages to install.
// - list() reports whether ours runs and the exports it logged after its last start or reload.
// ganesha listens on *:2049 in the node's network namespace; the clients restriction per export
// (the VC's subnet) and the network's anti-spoofing rules decide who may mount what.

import { randomInt } from 'node:crypto';
import { posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execOk, type Transport } from '../transport/types.js';
import { exportIds, normalizeExports, renderGaneshaConfig, type NfsExport } from './ganesha-config.js';

export const GANESHA_BINARY = 'ganesha.nfsd';
export const GANESHA_PACKAGES = 'nfs-ganesha nfs-ganesha-vfs';

export class NfsServerMissingError extends Error {
  constructor(host: string) {
    super(`${host}: ${GANESHA_BINARY} is not installed: install the Debian packages ${GANESHA_PACKAGES} on this node (hack/setup does) to serve shared storage over NFS`);
    this.name = 'NfsServerMissingError';
  }
}

export interface ServedExport extends NfsExport {
  id: number;
}

export interface NfsServerState {
  pid: number | undefined;
  /** Exports ganesha logged after its last start or reload (empty when it does not run). */
  exports: ServedExport[];
}

export interface NfsServerOptions {
  runRoot: string;
  /** How long to wait for ganesha to start or reload; default 15 s. */
  readyTimeoutMs?: number;
}

const START_MARK = 'NFS SERVER INITIALIZED';
const RELOAD_START = 'Received SIGHUP';
const RELOAD_DONE = 'Exports after update';
const EXPORT_LINE = /:EXPORT :INFO :Export\s+(\d+) pseudo \((.*?)\) with path \((.*?)\) and tag/;
const CLIENT_LINE = /:EXPORT :INFO :\s+NETWORK_CLIENT: (\S+) /;

/** Where a node's NFS server keeps its files under the node's run root (see the header). */
export function nfsServerPaths(runRoot: string): { dir: string; confPath: string; pidPath: string; logPath: string; recoveryRoot: string } {
  const dir = posix.join(runRoot, 'nfs');
  return { dir, confPath: posix.join(dir, 'ganesha.conf'), pidPath: posix.join(dir, 'ganesha.pid'), logPath: posix.join(dir, 'ganesha.log'), recoveryRoot: posix.join(dir, 'recovery') };
}

export class NfsServerDriver {
  readonly dir: string;
  readonly confPath: string;
  readonly pidPath: string;
  readonly logPath: string;
  readonly recoveryRoot: string;
  private readonly readyTimeoutMs: number;

  constructor(private readonly t: Transport, opts: NfsServerOptions) {
    ({ dir: this.dir, confPath: this.confPath, pidPath: this.pidPath, logPath: this.logPath, recoveryRoot: this.recoveryRoot } = nfsServerPaths(opts.runRoot));
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
  }

  async apply(exports: readonly NfsExport[]): Promise<{ changed: string[] }> {
    const wanted = normalizeExports(exports);
    const changed: string[] = [];
    const pid = await this.runningPid();
    if (wanted.length === 0) {
      if (pid !== undefined) {
        await this.stop(pid);
        changed.push('nfs server stopped (no export wanted)');
      }
      return { changed };
    }
    const conf = renderGaneshaConfig(wanted, { recoveryRoot: this.recoveryRoot });
    const current = await this.t.exec(['cat', this.confPath]);
    const confChanged = current.code !== 0 || current.stdout !== conf;
    if (confChanged) {
      await execOk(this.t, ['mkdir', '-p', this.recoveryRoot]);
      await this.t.writeFile(this.confPath, conf, 0o600);
    }
    const ids = exportIds(wanted);
    const key = (e: NfsExport & { id?: number }) => `${e.id ?? ''} ${e.pseudo} ${e.path} ${e.clients}`;
    const want = wanted.map((e) => key({ ...e, id: ids.get(e.pseudo) })).sort();
    const serves = (list: ServedExport[]) => list.map(key).sort().join('\n') === want.join('\n');
    // What ganesha serves, as read from its log after the last start or reload; read again only
    // when this call started or reloaded it (the log is read whole over the transport).
    let served: ServedExport[] | undefined;
    if (pid === undefined) {
      await this.start();
      changed.push(`nfs server started serving ${wanted.map((e) => e.pseudo).join(', ')}`);
    } else {
      // Reload also when the config is unchanged but an export is not served (its directory
      // appeared since ganesha dropped it).
      const before = await this.served();
      if (!confChanged && serves(before)) {
        served = before;
      } else {
        await this.reload(pid);
        const was = new Set(before.map((e) => e.pseudo));
        const now = new Set(wanted.map((e) => e.pseudo));
        const added = [...now].filter((p) => !was.has(p));
        const removed = [...was].filter((p) => !now.has(p));
        changed.push(`nfs exports reloaded${added.length ? `; added ${added.join(', ')}` : ''}${removed.length ? `; removed ${removed.join(', ')}` : ''}`);
      }
    }
    const have = (served ?? (await this.served())).map(key).sort();
    if (have.join('\n') !== want.join('\n')) {
      const missing = want.filter((k) => !have.includes(k));
      throw new Error(
        `${this.t.host}: nfs-ganesha does not serve ${missing.join('; ') || 'what is wanted'} (it serves: ${have.join('; ') || 'nothing'}); ` +
          `does each export directory exist, and is ${GANESHA_PACKAGES.split(' ')[1]} installed? Its log ${this.logPath} says: ${await this.logProblems()}`,
      );
    }
    return { changed };
  }

  async list(): Promise<NfsServerState> {
    const pid = await this.runningPid();
    return { pid, exports: pid === undefined ? [] : await this.served() };
  }

  /** Stops our ganesha if it runs (for teardown). */
  async stopServer(): Promise<void> {
    const pid = await this.runningPid();
    if (pid !== undefined) await this.stop(pid);
  }

  /** The pid of our running ganesha, or undefined. */
  async runningPid(): Promise<number | undefined> {
    const r = await this.t.exec(['cat', this.pidPath]);
    const pid = Number(r.stdout.trim());
    if (r.code !== 0 || !Number.isInteger(pid) || pid <= 0) return undefined;
    // One command, so the pid cannot be reused between reading its state and its command line.
    const p = await this.t.exec(['sh', '-c', 'grep "^State:" "/proc/$1/status" && cat "/proc/$1/cmdline"', 'sh', String(pid)]);
    if (p.code !== 0) return undefined;
    const nl = p.stdout.indexOf('\n');
    if (/^State:\s*[ZX]/.test(p.stdout.slice(0, nl))) return undefined; // ended, not yet reaped
    const cmdline = p.stdout.slice(nl + 1);
    const argv = cmdline.split('\0');
    const f = argv.indexOf('-f');
    return posix.basename(argv[0] ?? '') === GANESHA_BINARY && f >= 0 && argv[f + 1] === this.confPath ? pid : undefined;
  }

  private async start(): Promise<void> {
    const which = await this.t.exec(['sh', '-c', 'command -v "$1"', 'sh', GANESHA_BINARY]);
    if (which.code !== 0) throw new NfsServerMissingError(this.t.host);
    await this.t.writeFile(this.logPath, '', 0o600);
    // ganesha daemonizes itself; its standard streams are detached so the transport does not wait.
    // -E: a random server epoch. ganesha builds its NFSv4 client and session ids from the epoch
    // (its start second by default), so two nodes' servers started in the same second hand out the
    // same ids: a guest migrating between them then presents a session the new server takes for
    // another client's, and hangs. With distinct epochs it gets "stale client id" and recovers.
    const epoch = String(1 + randomInt(0x7ffffffe));
    await execOk(this.t, ['sh', '-c', 'exec "$@" </dev/null >/dev/null 2>&1', 'sh', GANESHA_BINARY, '-f', this.confPath, '-L', this.logPath, '-p', this.pidPath, '-N', 'NIV_EVENT', '-E', epoch]);
    await this.waitForLog(0, START_MARK, 'start');
    if ((await this.runningPid()) === undefined) {
      throw new Error(`${this.t.host}: nfs-ganesha logged its start but does not run; its log ${this.logPath} says: ${await this.logProblems()}`);
    }
  }

  private async reload(pid: number): Promise<void> {
    const offset = await this.logSize();
    await execOk(this.t, ['kill', '-HUP', String(pid)]);
    await this.waitForLog(offset, RELOAD_DONE, 'reload its exports');
  }

  private async stop(pid: number): Promise<void> {
    await this.t.exec(['kill', '-TERM', String(pid)]);
    const deadline = Date.now() + 10_000;
    while ((await this.runningPid()) !== undefined) {
      if (Date.now() > deadline) {
        await this.t.exec(['kill', '-KILL', String(pid)]);
        break;
      }
      await sleep(100);
    }
    await this.t.exec(['rm', '-f', this.pidPath]);
  }

  private async logSize(): Promise<number> {
    const r = await this.t.exec(['stat', '-c', '%s', this.logPath]);
    return r.code === 0 ? Number(r.stdout.trim()) : 0;
  }

  private async logFrom(offset: number): Promise<string> {
    const r = await this.t.exec(['tail', '-c', `+${offset + 1}`, this.logPath]);
    return r.code === 0 ? r.stdout : '';
  }

  private async waitForLog(offset: number, mark: string, what: string): Promise<void> {
    const deadline = Date.now() + this.readyTimeoutMs;
    for (;;) {
      if ((await this.logFrom(offset)).includes(mark)) return;
      if (Date.now() > deadline) {
        throw new Error(`${this.t.host}: nfs-ganesha did not ${what} within ${this.readyTimeoutMs} ms (is port 2049 taken?); its log ${this.logPath} says: ${await this.logProblems()}`);
      }
      await sleep(100);
    }
  }

  /** The exports listed after the last start or reload in the log. */
  private async served(): Promise<ServedExport[]> {
    const log = await this.logFrom(0);
    const lastReload = log.lastIndexOf(RELOAD_START);
    const segment = lastReload >= 0 ? log.slice(lastReload) : log;
    const out: ServedExport[] = [];
    for (const line of segment.split('\n')) {
      const e = EXPORT_LINE.exec(line);
      if (e) {
        if (e[1] !== '0') out.push({ id: Number(e[1]), pseudo: e[2]!, path: e[3]!, clients: '' });
        else out.push({ id: 0, pseudo: '/', path: '', clients: '' }); // the pseudo root: dropped below
        continue;
      }
      const c = CLIENT_LINE.exec(line);
      const last = out[out.length - 1];
      if (c && last && last.clients === '') last.clients = c[1]!;
    }
    return out.filter((e) => e.id !== 0);
  }

  /** The last warnings and errors of the log, for error messages (dbus complaints left out). */
  private async logProblems(): Promise<string> {
    const lines = (await this.logFrom(0)).split('\n').filter((l) => /:(WARN|MAJ|CRIT|FATAL) :/.test(l) && !/DBUS|dbus|krb5|keytab|RADOS|Register.*UDP|realm/.test(l));
    return lines.slice(-5).map((l) => l.replace(/^.*?\] /, '')).join(' | ') || '(no errors logged)';
  }
}
