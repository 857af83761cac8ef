// Pieces shared by the transports: argv validation, a per-host concurrency limiter, the deadline
// (timeout + abort) of one command, and exec built on top of spawn.

import { PassThrough } from 'node:stream';
import type { ExecOptions, ExecResult, SpawnedProcess, Transport } from './types.js';
import { TransportAbortedError, TransportError, TransportTimeoutError } from './types.js';

export const DEFAULT_TIMEOUT_MS = 60_000;
/** Between SIGTERM and SIGKILL of a timed-out or aborted command's process group. */
export const KILL_GRACE_MS = 2_000;

/** argv for messages: one line, long arguments (scripts) shortened. */
export function describeArgv(argv: readonly string[]): string {
  return argv
    .map((a) => {
      const one = a.replace(/\s+/g, ' ');
      return one.length > 60 ? `${one.slice(0, 57)}...` : one;
    })
    .join(' ');
}

/** An argument vector must be non-empty and free of NUL bytes (no OS can pass those). */
export function validateArgv(host: string, argv: readonly string[]): void {
  if (argv.length === 0 || argv[0] === '') {
    throw new TransportError(`${host}: empty argument vector; pass the program as argv[0]`);
  }
  for (const a of argv) {
    if (typeof a !== 'string') throw new TransportError(`${host}: argument ${String(a)} is not a string`);
    if (a.includes('\0')) {
      throw new TransportError(`${host}: argument ${JSON.stringify(a)} contains a NUL byte, which no command can receive`);
    }
  }
}

/**
 * Bounds concurrent commands (per host). acquire() resolves with a release function when a slot
 * is free; waiters are served in FIFO order. An aborted waiter leaves the queue.
 */
export class ConcurrencyLimiter {
  private active = 0;
  private readonly waiters: { grant: () => void; reject: (e: unknown) => void }[] = [];

  constructor(public readonly limit: number) {
    if (!(limit >= 1)) throw new RangeError(`concurrency limit must be >= 1, got ${limit}`);
  }

  get running(): number {
    return this.active;
  }
  get queued(): number {
    return this.waiters.length;
  }

  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const w = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(this.releaser());
        },
        reject,
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(w);
    });
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiters.shift();
      if (next) next.grant(); // the slot passes straight to the next waiter
      else this.active--;
    };
  }
}

/**
 * The deadline of one command: an AbortSignal that fires on the caller's signal or after
 * timeoutMs, with the matching error. dispose() clears the timer.
 */
export class CommandDeadline {
  private readonly controller = new AbortController();
  private readonly timer?: NodeJS.Timeout;
  private readonly onCallerAbort?: () => void;
  private readonly callerSignal?: AbortSignal;

  constructor(host: string, argv: readonly string[], opts: { timeoutMs?: number; signal?: AbortSignal }) {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const what = `${host}: \`${describeArgv(argv)}\``;
    if (timeoutMs > 0) {
      this.timer = setTimeout(
        () => this.controller.abort(new TransportTimeoutError(`${what} timed out after ${timeoutMs} ms; the process group was killed`)),
        timeoutMs,
      );
      this.timer.unref?.();
    }
    if (opts.signal) {
      this.callerSignal = opts.signal;
      this.onCallerAbort = () =>
        this.controller.abort(new TransportAbortedError(`${what} was aborted; the process group was killed`, { cause: opts.signal?.reason }));
      if (opts.signal.aborted) this.onCallerAbort();
      else opts.signal.addEventListener('abort', this.onCallerAbort, { once: true });
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The TransportTimeoutError / TransportAbortedError once fired. */
  get error(): TransportError | undefined {
    return this.controller.signal.aborted ? (this.controller.signal.reason as TransportError) : undefined;
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.onCallerAbort) this.callerSignal?.removeEventListener('abort', this.onCallerAbort);
  }
}

export interface Stdio {
  stdin: PassThrough;
  stdout: PassThrough;
  stderr: PassThrough;
}

/**
 * Starts one command of a transport: runs it with the caller's streams once the deadline allows
 * and the transport must call onKill with the function that ends it (process group) once it runs.
 */
export type CommandStarter = (io: Stdio, deadline: CommandDeadline, onKill: (kill: () => void) => void) => Promise<ExecResult>;

/**
 * The spawn of both transports: hands out stream ends at once, waits for a slot of the per-host
 * limiter (the timeout counts from the call, queueing included), then starts the command.
 */
export function spawnQueued(
  host: string,
  argv: readonly string[],
  opts: { timeoutMs?: number; signal?: AbortSignal },
  limiter: ConcurrencyLimiter,
  start: CommandStarter,
): SpawnedProcess {
  const io: Stdio = { stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough() };
  const deadline = new CommandDeadline(host, argv, opts);
  const what = `${host}: \`${describeArgv(argv)}\``;
  let killer: (() => void) | undefined;
  let killRequested = false;
  const done = (async (): Promise<ExecResult> => {
    let release: (() => void) | undefined;
    try {
      release = await limiter.acquire(deadline.signal).catch(() => {
        throw deadline.error ?? new TransportError(`${what} was aborted while queued`);
      });
      if (killRequested) throw new TransportError(`${what} was killed before it started`);
      return await start(io, deadline, (k) => {
        killer = k;
        if (killRequested) k();
      });
    } finally {
      release?.();
      deadline.dispose();
    }
  })();
  done.catch(() => {
    // the caller may only read the streams: end them so readers do not hang
    if (!io.stdout.writableEnded) io.stdout.end();
    if (!io.stderr.writableEnded) io.stderr.end();
  });
  return {
    ...io,
    done,
    kill: () => {
      killRequested = true;
      killer?.();
    },
  };
}

/** exec in terms of spawn: feed stdin, collect stdout/stderr as UTF-8, resolve with the result. */
export function execViaSpawn(t: Pick<Transport, 'spawn'>, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const { stdin, ...rest } = opts;
  let p: SpawnedProcess;
  try {
    p = t.spawn(argv, rest);
  } catch (e) {
    return Promise.reject(e);
  }
  return collect(p, stdin);
}

async function collect(p: SpawnedProcess, stdin: ExecOptions['stdin']): Promise<ExecResult> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  p.stdout.on('data', (b: Buffer) => out.push(b));
  p.stderr.on('data', (b: Buffer) => err.push(b));
  // A process that exits without reading its stdin makes our write fail with EPIPE: not an error.
  p.stdin.on('error', () => {});
  p.stdin.end(stdin ?? undefined);
  const r = await p.done;
  await Promise.all([ended(p.stdout), ended(p.stderr)]);
  return { ...r, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

function ended(s: NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean }): Promise<void> {
  if (s.readableEnded || s.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    s.once('end', resolve);
    s.once('close', resolve);
    s.once('error', () => resolve());
  });
}
