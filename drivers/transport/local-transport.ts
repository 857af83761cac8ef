// LocalTransport: the Transport contract (types.ts) on this machine, for a single-machine setup
// (PhysicalNode spec.transport: local) and for tests. Child processes without a shell: argv
// elements reach the program unchanged. Each command is the leader of its own process group
// (detached), so a timeout or abort ends the command and everything it started (SIGTERM to the
// group, SIGKILL after KILL_GRACE_MS).
//
// A program that does not exist resolves with code 127 (126 when not executable) and a shell-like
// message on stderr, exactly as the same argv over SSH does, so drivers see one behaviour on both
// transports.

import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, open, rename, rm } from 'node:fs/promises';
import * as net from 'node:net';
import { constants as osConstants } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';
import {
  ConcurrencyLimiter,
  KILL_GRACE_MS,
  execViaSpawn,
  spawnQueued,
  validateArgv,
  type CommandDeadline,
  type Stdio,
} from './common.js';
import type { ConnectTarget, ExecOptions, ExecResult, SpawnedProcess, Transport } from './types.js';
import { TransportError } from './types.js';

export interface LocalTransportOptions {
  /** Label for logs and errors; default "localhost". */
  host?: string;
  /** Concurrent commands; default 32. The rest queue. */
  maxConcurrent?: number;
}

export class LocalTransport implements Transport {
  readonly host: string;
  private readonly limiter: ConcurrencyLimiter;
  private readonly running = new Set<ChildProcess>();
  private closed = false;

  constructor(opts: LocalTransportOptions = {}) {
    this.host = opts.host ?? 'localhost';
    this.limiter = new ConcurrencyLimiter(opts.maxConcurrent ?? 32);
  }

  exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return execViaSpawn(this, argv, opts);
  }

  spawn(argv: readonly string[], opts: Omit<ExecOptions, 'stdin'> = {}): SpawnedProcess {
    validateArgv(this.host, argv);
    if (this.closed) throw new TransportError(`${this.host}: transport is closed`);
    return spawnQueued(this.host, argv, opts, this.limiter, (io, deadline, onKill) =>
      this.run(argv, opts, io, deadline, (c) => onKill(() => killGroup(c))),
    );
  }

  private run(
    argv: readonly string[],
    opts: Omit<ExecOptions, 'stdin'>,
    io: Stdio,
    deadline: CommandDeadline,
    onChild: (c: ChildProcess) => void,
  ): Promise<ExecResult> {
    return new Promise<ExecResult>((resolve, reject) => {
      const child = spawnChild(argv[0]!, argv.slice(1), {
        cwd: opts.cwd,
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
        detached: true, // own process group: a timeout kills the whole tree
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      onChild(child);
      this.running.add(child);
      let spawnError: NodeJS.ErrnoException | undefined;
      child.on('error', (e: NodeJS.ErrnoException) => {
        spawnError = e;
      });
      io.stdin.pipe(child.stdin!);
      child.stdin!.on('error', () => {}); // EPIPE when the program does not read its stdin
      // ended by us on 'close', after a possible "command not found" message
      child.stdout!.pipe(io.stdout, { end: false });
      child.stderr!.pipe(io.stderr, { end: false });

      const onAbort = () => killGroup(child);
      deadline.signal.addEventListener('abort', onAbort, { once: true });

      child.on('close', (code, signal) => {
        this.running.delete(child);
        deadline.signal.removeEventListener('abort', onAbort);
        io.stdin.unpipe(child.stdin!);
        const endOutput = (stderrText?: string) => {
          io.stdout.end();
          io.stderr.end(stderrText);
        };
        if (deadline.error) {
          // make sure nothing of the group survives the grace period
          killGroup(child, 'SIGKILL');
          endOutput();
          reject(deadline.error);
          return;
        }
        if (spawnError && child.pid === undefined) {
          const missing = spawnError.code === 'ENOENT';
          const notExec = spawnError.code === 'EACCES';
          if (missing || notExec) {
            endOutput(`${argv[0]}: ${missing ? 'command not found' : 'permission denied'}\n`);
            resolve({ code: missing ? 127 : 126, stdout: '', stderr: '' });
          } else {
            endOutput();
            reject(new TransportError(`${this.host}: cannot run \`${argv[0]}\`: ${spawnError.message}`, { cause: spawnError }));
          }
          return;
        }
        endOutput();
        resolve(signal ? { code: 128 + signalNumber(signal), stdout: '', stderr: '', signal } : { code: code ?? 0, stdout: '', stderr: '' });
      });
    });
  }

  async connect(target: ConnectTarget): Promise<Duplex> {
    const sock =
      'unixSocket' in target
        ? net.createConnection({ path: target.unixSocket })
        : net.createConnection({ host: target.host ?? '127.0.0.1', port: target.port });
    const what = 'unixSocket' in target ? target.unixSocket : `${target.host ?? '127.0.0.1'}:${target.port}`;
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', (e) => reject(new TransportError(`${this.host}: cannot connect to ${what}: ${e.message}`, { cause: e })));
    });
    return sock;
  }

  async writeFile(path: string, data: string | Buffer, mode = 0o644): Promise<void> {
    const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const fh = await open(tmp, 'wx', mode);
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await chmod(tmp, mode); // the umask may have narrowed the mode given to open
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw new TransportError(`${this.host}: cannot write ${path}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Kills every command still running and refuses new ones. */
  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.running) killGroup(c, 'SIGKILL');
  }
}

/** SIGTERM (or the given signal) to the child's process group; SIGKILL after the grace period. */
function killGroup(child: ChildProcess, sig: NodeJS.Signals = 'SIGTERM'): void {
  const pid = child.pid;
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    return; // the group is gone already
  }
  if (sig !== 'SIGKILL') {
    setTimeout(() => {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, KILL_GRACE_MS).unref();
  }
}

/** The shell's convention: a process killed by signal N exits 128+N. */
function signalNumber(sig: NodeJS.Signals): number {
  return (osConstants.signals as Record<string, number>)[sig] ?? 0;
}
