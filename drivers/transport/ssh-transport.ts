// SshTransport: the Transport contract (types.ts) over SSH, on ssh2.
//
// - Host key pinned: the server must present exactly `hostKey` ("ssh-ed25519 AAAA..."); the check
//   runs in the key exchange, before any authentication, and a different key fails the connection
//   with HostKeyMismatchError (expected and offered SHA256 fingerprints). Only the pinned key's
//   algorithm is offered, so the server cannot pick another of its keys.
// - Key authentication from identityFile (read at each connect: a rotated key is picked up).
// - A pool of connections per host (lazily opened, at most `sessionsPerConnection` commands on each,
//   below OpenSSH's MaxSessions of 10 to leave room for kill commands), with keepalive; a broken
//   connection fails the commands on it with TransportError and leaves the pool: the next command
//   connects again. A session the server refuses (its MaxSessions is lower than assumed, or it has
//   not yet released closed sessions) ran nothing: the command is retried with a short backoff, and
//   that connection takes one command fewer from then on.
// - Commands are bounded per host (`maxConcurrent`); the rest queue (FIFO).
// - Quoting: the remote side runs a command string through the login shell (must be POSIX: sh,
//   bash, dash). Each argv element is single-quoted (' -> '\''), so every byte string arrives as
//   one unchanged argument.
// - Killable commands: the command string is `echo vl-pid:$$; exec ARGV`. OpenSSH runs an exec
//   request's shell as a session (and process-group) leader, so the printed PID is the command's
//   process group, which `exec` keeps. On timeout or abort a second channel runs a fixed kill script
//   (SIGTERM to the group, SIGKILL after a grace period): ssh2's "signal" channel request is ignored
//   by OpenSSH for sessions without a pty, so it is not relied on. The PID line is removed from
//   stdout before the caller sees it (anything a login script prints before it is dropped too).

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import { Transform } from 'node:stream';
import { Client, type ClientChannel, type ConnectConfig, type ServerHostKeyAlgorithm } from 'ssh2';
import {
  ConcurrencyLimiter,
  KILL_GRACE_MS,
  execViaSpawn,
  describeArgv,
  spawnQueued,
  validateArgv,
  type CommandDeadline,
  type Stdio,
} from './common.js';
import { traceExec } from './exec-trace.js';
import type { ConnectTarget, ExecOptions, ExecResult, SpawnedProcess, Transport } from './types.js';
import { HostKeyMismatchError, TransportError, TransportTimeoutError } from './types.js';

export interface SshTransportOptions {
  /** Label for logs and errors: the node name. */
  host: string;
  address: string;
  port?: number;
  user?: string;
  /** Path of the private key (on this machine). */
  identityFile?: string;
  /** The key itself, instead of identityFile (tests). */
  privateKey?: Buffer | string;
  /** Pinned host key, "ssh-ed25519 AAAA..." (a trailing comment is ignored). */
  hostKey: string;
  /** Concurrent commands on this host; default 16. */
  maxConcurrent?: number;
  /** Commands per connection; default 8 (OpenSSH's MaxSessions is 10). */
  sessionsPerConnection?: number;
  /** Default 10 000. */
  keepaliveIntervalMs?: number;
  /** Missed keepalives before the connection counts as dead; default 3. */
  keepaliveCountMax?: number;
  /** Handshake + authentication timeout; default 10 000. */
  connectTimeoutMs?: number;
}

const PID_PREFIX = 'vl-pid:';
const KILL_SCRIPT =
  'kill -TERM "-$1" 2>/dev/null || exit 0; i=0; ' +
  `while kill -0 "-$1" 2>/dev/null && [ "$i" -lt ${Math.ceil(KILL_GRACE_MS / 100)} ]; do sleep 0.1; i=$((i+1)); done; ` +
  'kill -KILL "-$1" 2>/dev/null; exit 0';
const WRITE_SCRIPT =
  't="$1.vl-tmp.$$"; umask 077; if cat > "$t" && chmod "$2" "$t" && mv -f "$t" "$1"; then exit 0; fi; rm -f "$t"; exit 1';

/** Quotes one argument for a POSIX shell: the result is one word with exactly these bytes. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The remote command string for argv (see the file comment). */
export function remoteCommand(argv: readonly string[], opts: Pick<ExecOptions, 'env' | 'cwd'> = {}): string {
  const words = [...argv];
  if (opts.env && Object.keys(opts.env).length > 0) {
    const assigns = Object.entries(opts.env).map(([k, v]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new TransportError(`environment variable name ${JSON.stringify(k)} is not valid`);
      return `${k}=${v}`;
    });
    words.unshift('env', ...assigns);
  }
  const cd = opts.cwd !== undefined ? `cd -- ${shellQuote(opts.cwd)} || exit 126; ` : '';
  return `echo ${PID_PREFIX}$$; ${cd}exec ${words.map(shellQuote).join(' ')}`;
}

/** "SHA256:..." of a public key blob, as OpenSSH prints it. */
export function fingerprint(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** Parses "ssh-ed25519 AAAA... [comment]" into the algorithm and the key blob. */
export function parseHostKey(hostKey: string): { algorithm: string; blob: Buffer } {
  const [algorithm, b64] = hostKey.trim().split(/\s+/);
  if (!algorithm || !b64 || !/^[A-Za-z0-9+/]+={0,3}$/.test(b64)) {
    throw new TransportError(`host key ${JSON.stringify(hostKey)} is not in the form "ssh-ed25519 AAAA..." (as in known_hosts)`);
  }
  const blob = Buffer.from(b64, 'base64');
  // the blob starts with its own algorithm name: a mismatch means a mangled key
  const nameLen = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (nameLen < 0 || blob.subarray(4, 4 + nameLen).toString('latin1') !== algorithm) {
    throw new TransportError(`host key ${JSON.stringify(hostKey.slice(0, 40))}...: the key data does not match its type ${algorithm}`);
  }
  return { algorithm, blob };
}

/** Host key algorithms to offer for a pinned key type. */
function hostKeyAlgorithms(algorithm: string): ServerHostKeyAlgorithm[] {
  if (algorithm === 'ssh-rsa') return ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
  return [algorithm as ServerHostKeyAlgorithm];
}

interface PooledConnection {
  client: Client;
  ready: Promise<void>;
  active: number;
  alive: boolean;
  /** Sessions this connection takes at once: sessionsPerConnection, lowered when the server refuses one. */
  limit: number;
}

/** The server refused to open a session channel: nothing ran, the command may be tried again. */
class SessionRefusedError extends TransportError {}

/** Attempts at opening a session the server refuses, with 25, 50, 100... ms between them. */
const SESSION_ATTEMPTS = 7;

export class SshTransport implements Transport {
  readonly host: string;
  private readonly opts: SshTransportOptions;
  private readonly pinned: { algorithm: string; blob: Buffer };
  private readonly limiter: ConcurrencyLimiter;
  private readonly perConnection: number;
  private readonly pool: PooledConnection[] = [];
  private closed = false;
  /** Connections opened so far (for tests and metrics). */
  connectionsOpened = 0;

  constructor(opts: SshTransportOptions) {
    this.host = opts.host;
    this.opts = opts;
    this.pinned = parseHostKey(opts.hostKey);
    this.perConnection = Math.min(opts.sessionsPerConnection ?? 8, opts.maxConcurrent ?? 16);
    this.limiter = new ConcurrencyLimiter(opts.maxConcurrent ?? 16);
  }

  exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return traceExec(this.host, argv, execViaSpawn(this, argv, opts));
  }

  spawn(argv: readonly string[], opts: Omit<ExecOptions, 'stdin'> = {}): SpawnedProcess {
    validateArgv(this.host, argv);
    if (this.closed) throw new TransportError(`${this.host}: transport is closed`);
    const command = remoteCommand(argv, opts);
    const what = `${this.host}: \`${describeArgv(argv)}\``;
    return spawnQueued(this.host, argv, opts, this.limiter, async (io, deadline, onKill) => {
      for (let attempt = 1; ; attempt++) {
        const conn = await this.session(deadline.signal);
        try {
          return await this.runOn(conn, command, what, io, deadline, onKill);
        } catch (e) {
          if (!(e instanceof SessionRefusedError) || attempt >= SESSION_ATTEMPTS) throw e;
          conn.limit = Math.max(1, Math.min(conn.limit, conn.active - 1));
        } finally {
          conn.active--;
        }
        await abortable(new Promise((r) => setTimeout(r, 25 * 2 ** (attempt - 1))), deadline.signal);
      }
    });
  }

  private runOn(
    conn: PooledConnection,
    command: string,
    what: string,
    io: Stdio,
    deadline: CommandDeadline,
    onKiller: (kill: () => void) => void,
  ): Promise<ExecResult> {
    return new Promise<ExecResult>((resolve, reject) => {
      // The command's deadline covers opening its session too: on a connection whose peer is gone
      // (a node cut off), the open is never answered and only keepalive ended it, 30-40 s later.
      // Unanswered when the deadline passes: the connection is taken for dead and closed, so the
      // next command connects afresh.
      let opened = false;
      const onOpenDeadline = () => {
        if (opened) return;
        if (deadline.error instanceof TransportTimeoutError) {
          conn.alive = false;
          conn.client.destroy();
        }
        reject(deadline.error ?? new TransportError(`${what}: no answer to opening a session`));
      };
      if (deadline.signal.aborted) return onOpenDeadline();
      deadline.signal.addEventListener('abort', onOpenDeadline, { once: true });
      conn.client.exec(command, (err, ch) => {
        opened = true;
        deadline.signal.removeEventListener('abort', onOpenDeadline);
        if (deadline.signal.aborted) {
          ch?.close(); // too late: the command has already failed
          return;
        }
        if (err) {
          const E = conn.alive ? SessionRefusedError : TransportError;
          reject(new E(`${what}: cannot open a session: ${err.message}`, { cause: err }));
          return;
        }
        let pid: number | undefined;
        let killWanted = false;
        let exit: { code: number; signal?: string } | undefined;
        let settled = false;
        const kill = () => {
          if (killWanted) return;
          killWanted = true;
          if (pid !== undefined) this.killRemote(conn, pid);
          // the channel closes when the process group is gone; if the PID never came, close it
          setTimeout(() => ch.close(), KILL_GRACE_MS + 3000).unref();
        };
        onKiller(kill);
        const onAbort = () => kill();
        deadline.signal.addEventListener('abort', onAbort, { once: true });

        const stripPid = new PidLineStripper((p) => {
          pid = p;
          if (killWanted) this.killRemote(conn, p);
        });
        ch.pipe(stripPid).pipe(io.stdout);
        ch.stderr.pipe(io.stderr);
        io.stdin.pipe(ch);
        ch.on('exit', (code: number | null, signal?: string) => {
          exit = signal ? { code: 128 + (SIGNALS[signal] ?? 0), signal: `SIG${signal}` } : { code: code ?? 0 };
        });
        const finish = (error?: Error) => {
          if (settled) return;
          settled = true;
          deadline.signal.removeEventListener('abort', onAbort);
          io.stdin.unpipe(ch);
          if (error || !exit) {
            // the pipes may never end on a dead connection
            if (!io.stdout.writableEnded) io.stdout.end();
            if (!io.stderr.writableEnded) io.stderr.end();
          }
          if (deadline.error) reject(deadline.error);
          else if (error) reject(error);
          else if (!exit) reject(new TransportError(`${what}: the connection closed before the command finished (no exit status)`));
          else resolve({ ...exit, stdout: '', stderr: '' });
        };
        ch.on('close', () => {
          // a close caused by the connection dying arrives with the client's error/close
          setImmediate(() => finish(conn.alive || exit ? undefined : new TransportError(`${what}: the SSH connection was lost while the command ran`)));
        });
        ch.on('error', (e: Error) => finish(new TransportError(`${what}: ${e.message}`, { cause: e })));
      });
    });
  }

  /**
   * Ends a remote process group (fixed script, the PID as its argument) on a channel of its own:
   * on the command's connection (which keeps 2 sessions free for this) or another live one.
   */
  private killRemote(via: PooledConnection, pid: number): void {
    const conn = via.alive ? via : this.pool.find((c) => c.alive);
    if (!conn) return; // the connection is gone: sshd hangs up the session, which ends the command
    conn.client.exec(remoteCommand(['sh', '-c', KILL_SCRIPT, 'sh', String(pid)]), (err, ch) => {
      if (err) return;
      ch.resume();
      ch.stderr.resume();
    });
  }

  /** A pooled connection with a free session slot; opens one when none has. */
  private async session(signal: AbortSignal): Promise<PooledConnection> {
    const conn = this.pool.find((c) => c.alive && c.active < c.limit) ?? this.open();
    conn.active++;
    try {
      await abortable(conn.ready, signal);
      return conn;
    } catch (e) {
      conn.active--;
      throw signal.aborted ? signal.reason : e;
    }
  }

  private open(): PooledConnection {
    const client = new Client();
    const conn: PooledConnection = { client, active: 0, alive: true, ready: Promise.resolve(), limit: this.perConnection };
    this.pool.push(conn);
    this.connectionsOpened++;
    const drop = () => {
      conn.alive = false;
      const i = this.pool.indexOf(conn);
      if (i >= 0) this.pool.splice(i, 1);
    };
    conn.ready = (async () => {
      let offered: Buffer | undefined;
      let config: ConnectConfig;
      try {
        config = await this.connectConfig((key) => {
          offered = key;
          return key.equals(this.pinned.blob);
        });
      } catch (e) {
        drop();
        throw e;
      }
      await new Promise<void>((resolve, reject) => {
        let up = false;
        client.once('ready', () => {
          up = true;
          resolve();
        });
        client.on('error', (e: Error & { level?: string }) => {
          drop();
          if (up) return; // channels report their own errors
          if (offered && !offered.equals(this.pinned.blob)) {
            reject(new HostKeyMismatchError(this.host, fingerprint(this.pinned.blob), fingerprint(offered)));
          } else if (!offered && /host ?key/i.test(e.message)) {
            // the server has no key of the pinned type at all: as much a mismatch as another key
            reject(new HostKeyMismatchError(this.host, fingerprint(this.pinned.blob), `no ${this.pinned.algorithm} key (${e.message})`));
          } else {
            const where = `${this.opts.user ?? 'root'}@${this.opts.address}:${this.opts.port ?? 22}`;
            const hint = e.level === 'client-authentication' ? '; check spec.ssh.user and identityFile, and that the key is authorized on the node' : '';
            reject(new TransportError(`${this.host}: cannot connect to ${where}: ${e.message}${hint}`, { cause: e }));
          }
        });
        client.on('close', () => {
          drop();
          if (!up) reject(new TransportError(`${this.host}: connection to ${this.opts.address}:${this.opts.port ?? 22} closed during the handshake`));
        });
        client.connect(config);
        // small request/response packets: Nagle + delayed ACK would add up to 40 ms per command
        client.setNoDelay(true);
      });
    })();
    conn.ready.catch(() => {});
    return conn;
  }

  private async connectConfig(hostVerifier: (key: Buffer) => boolean): Promise<ConnectConfig> {
    let privateKey = this.opts.privateKey;
    if (privateKey === undefined) {
      if (!this.opts.identityFile) throw new TransportError(`${this.host}: no identityFile given (spec.ssh.identityFile)`);
      try {
        privateKey = await readFile(this.opts.identityFile);
      } catch (e) {
        throw new TransportError(`${this.host}: cannot read identityFile ${this.opts.identityFile}: ${(e as Error).message}`, { cause: e });
      }
    }
    return {
      host: this.opts.address,
      port: this.opts.port ?? 22,
      username: this.opts.user ?? 'root',
      privateKey,
      hostVerifier,
      algorithms: { serverHostKey: hostKeyAlgorithms(this.pinned.algorithm) },
      keepaliveInterval: this.opts.keepaliveIntervalMs ?? 10_000,
      keepaliveCountMax: this.opts.keepaliveCountMax ?? 3,
      readyTimeout: this.opts.connectTimeoutMs ?? 10_000,
    };
  }

  async connect(target: ConnectTarget): Promise<Duplex> {
    if (this.closed) throw new TransportError(`${this.host}: transport is closed`);
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(new TransportError(`${this.host}: connect timed out`)), this.opts.connectTimeoutMs ?? 10_000);
    const conn = await this.session(ctrl.signal).finally(() => clearTimeout(timer));
    conn.active--; // forwarded channels are not sessions: they do not count against MaxSessions
    const what = 'unixSocket' in target ? target.unixSocket : `${target.host ?? '127.0.0.1'}:${target.port}`;
    return new Promise<Duplex>((resolve, reject) => {
      const cb = (err: Error | undefined, ch: ClientChannel) => {
        if (err) reject(new TransportError(`${this.host}: cannot connect to ${what} on the host: ${err.message}`, { cause: err }));
        else resolve(ch);
      };
      if ('unixSocket' in target) conn.client.openssh_forwardOutStreamLocal(target.unixSocket, cb);
      else conn.client.forwardOut('127.0.0.1', 0, target.host ?? '127.0.0.1', target.port, cb);
    });
  }

  async writeFile(path: string, data: string | Buffer, mode = 0o644): Promise<void> {
    const r = await this.exec(['sh', '-c', WRITE_SCRIPT, 'sh', path, mode.toString(8)], { stdin: data });
    if (r.code !== 0) throw new TransportError(`${this.host}: cannot write ${path}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }

  /** Closes every pooled connection (their running commands fail) and refuses new commands. */
  async close(): Promise<void> {
    this.closed = true;
    for (const c of [...this.pool]) {
      c.alive = false;
      c.client.end();
    }
    this.pool.length = 0;
  }
}

/** Removes everything up to and including the `vl-pid:N` line and reports N. */
class PidLineStripper extends Transform {
  private head: Buffer | undefined = Buffer.alloc(0);
  constructor(private readonly onPid: (pid: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    if (!this.head) {
      this.push(chunk);
      return cb();
    }
    this.head = Buffer.concat([this.head, chunk]);
    const text = this.head.toString('latin1');
    const m = /(?:^|\n)vl-pid:(\d+)\n/.exec(text);
    if (m) {
      const rest = this.head.subarray(m.index + m[0].length);
      this.head = undefined;
      this.onPid(Number(m[1]));
      if (rest.length) this.push(rest);
    }
    cb();
  }
  override _flush(cb: () => void): void {
    // no PID line: the command never ran (the login shell failed); pass on what it printed
    if (this.head?.length) this.push(this.head);
    cb();
  }
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** Signal numbers by the names SSH reports (without SIG), for the shell's 128+N convention. */
const SIGNALS: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, ABRT: 6, FPE: 8, KILL: 9, SEGV: 11, PIPE: 13, ALRM: 14, TERM: 15, USR1: 10, USR2: 12,
};

