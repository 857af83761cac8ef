// The Transport contract: how every driver reaches a physical node. Drivers never import ssh2 or
// child_process directly; they get a Transport for the node and call it with argument vectors.
//
// Contract:
// - exec runs argv[0] with arguments argv[1..] on the host. Every element arrives byte-for-byte
//   unchanged as one argument (SSH: each is quoted for the remote POSIX shell; local: no shell).
//   Never build a shell string from data: if a driver needs a pipeline it passes
//   ['sh', '-c', FIXED_SCRIPT, 'sh', arg1, arg2] with the data as positional parameters.
// - exec resolves with the exit code, stdout and stderr even when the code is non-zero; it rejects
//   only when the command could not be run or finished (connection lost: TransportError; timeout
//   or abort: TransportTimeoutError / TransportAbortedError). On timeout or abort the remote
//   process is ended (its process group is sent SIGTERM, then SIGKILL).
// - spawn is the streaming form: stdout/stderr as streams, stdin writable, `done` for the result.
// - connect opens a byte stream to a unix socket path or TCP port on the host (QMP, migration).
// - writeFile writes a file atomically (temporary name + rename) with the given mode.
// - Implementations bound concurrent commands per host and queue the rest.

import type { Duplex, Readable, Writable } from 'node:stream';
import { NamedError } from '../../api/errors.js';

export interface ExecOptions {
  stdin?: string | Buffer;
  /** Milliseconds; default 60 000. 0 = no timeout. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Extra environment (local transport; SSH passes it through `env` as argv). */
  env?: Record<string, string>;
  cwd?: string;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Set when the process died by a signal. */
  signal?: string;
}

export interface SpawnedProcess {
  stdin: Writable;
  stdout: Readable;
  stderr: Readable;
  /** Resolves when the process ends, with its exit code (stdout/stderr empty: they were streamed). */
  done: Promise<ExecResult>;
  /** Ends the process (process group) on the host. */
  kill(): void;
}

export type ConnectTarget = { unixSocket: string } | { host?: string; port: number };

export interface Transport {
  /** A label for logs and errors: the node name. */
  readonly host: string;
  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  spawn(argv: readonly string[], opts?: Omit<ExecOptions, 'stdin'>): SpawnedProcess;
  connect(target: ConnectTarget): Promise<Duplex>;
  writeFile(path: string, data: string | Buffer, mode?: number): Promise<void>;
  close(): Promise<void>;
}

export class TransportError extends NamedError {}
export class TransportTimeoutError extends TransportError {}
export class TransportAbortedError extends TransportError {}
export class HostKeyMismatchError extends TransportError {
  constructor(
    public readonly host: string,
    public readonly expected: string,
    public readonly offered: string,
  ) {
    super(
      `host key mismatch for ${host}: expected ${expected}, offered ${offered}; ` +
        `check spec.ssh.hostKey of the PhysicalNode (a changed key may mean the host was replaced or the connection is intercepted)`,
    );
  }
}

/** Throws if the command failed, with its stderr in the message. Returns stdout. */
export async function execOk(t: Transport, argv: readonly string[], opts?: ExecOptions): Promise<string> {
  const r = await t.exec(argv, opts);
  if (r.code !== 0) {
    throw new TransportError(
      `${t.host}: \`${argv.join(' ')}\` exited ${r.code}${r.signal ? ` (${r.signal})` : ''}: ${r.stderr.trim() || r.stdout.trim()}`,
    );
  }
  return r.stdout;
}
