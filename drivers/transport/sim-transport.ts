// SIMULATION ONLY: the Transport of a PhysicalNode with `spec.transport: sim` (sim-host.ts says
// what such a host is and answers). Same contract as the SSH transport (types.ts): argv
// validated, commands bounded per host and queued, each with its deadline (timeout or abort:
// TransportTimeoutError / TransportAbortedError), the round trip taking the host's rttMs. A host
// that stops answering makes every command end at its deadline, as an SSH peer cut off does.
// There are no sockets on a sim host: connect() fails.

import type { Duplex } from 'node:stream';
import { CommandDeadline, ConcurrencyLimiter, execViaSpawn, spawnQueued, validateArgv } from './common.js';
import { SimAbortedError, simSleep, type SimHost } from './sim-host.js';
import { TransportError, type ConnectTarget, type ExecOptions, type ExecResult, type SpawnedProcess, type Transport } from './types.js';

export class SimTransport implements Transport {
  readonly host: string;
  private readonly limiter: ConcurrencyLimiter;
  private closed = false;

  constructor(readonly sim: SimHost) {
    this.host = sim.name;
    this.limiter = new ConcurrencyLimiter(sim.behaviour.maxConcurrent);
  }

  exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return execViaSpawn(this, argv, opts);
  }

  spawn(argv: readonly string[], opts: Omit<ExecOptions, 'stdin'> = {}): SpawnedProcess {
    validateArgv(this.host, argv);
    if (this.closed) throw new TransportError(`${this.host}: the sim transport is closed`);
    return spawnQueued(this.host, argv, opts, this.limiter, async (io, deadline, onKill) => {
      const stdin: Buffer[] = [];
      io.stdin.on('data', (b: Buffer) => stdin.push(b));
      await new Promise<void>((resolve) => (io.stdin.writableEnded && io.stdin.readableEnded ? resolve() : io.stdin.once('end', resolve)));
      const kill = new AbortController();
      onKill(() => kill.abort());
      const signal = AbortSignal.any([deadline.signal, kill.signal]);
      try {
        await simSleep(this.sim.behaviour.rttMs / 2, signal);
        const r = await this.sim.run(argv, Buffer.concat(stdin), signal);
        await simSleep(this.sim.behaviour.rttMs / 2, signal);
        io.stdout.end(r.stdout);
        io.stderr.end(r.stderr);
        return { code: r.code, stdout: '', stderr: '' };
      } catch (e) {
        throw this.ended(e, deadline, kill.signal, argv);
      }
    });
  }

  private ended(e: unknown, deadline: CommandDeadline, killed: AbortSignal, argv: readonly string[]): unknown {
    if (!(e instanceof SimAbortedError)) return e;
    if (deadline.error) return deadline.error;
    if (killed.aborted) return new TransportError(`${this.host}: \`${argv[0]}\` was killed`);
    return e;
  }

  async connect(_target: ConnectTarget): Promise<Duplex> {
    throw new TransportError(`${this.host}: a sim host has no sockets to connect to`);
  }

  async writeFile(path: string, data: string | Buffer, _mode?: number): Promise<void> {
    const deadline = new CommandDeadline(this.host, ['writeFile', path], {});
    const release = await this.limiter.acquire(deadline.signal).catch(() => {
      throw deadline.error ?? new TransportError(`${this.host}: writeFile ${path} was aborted while queued`);
    });
    try {
      await simSleep(this.sim.behaviour.rttMs, deadline.signal);
      await this.sim.silence(deadline.signal);
      this.sim.writeFile(path, Buffer.isBuffer(data) ? data : Buffer.from(data));
    } catch (e) {
      throw this.ended(e, deadline, new AbortController().signal, ['writeFile', path]);
    } finally {
      release();
      deadline.dispose();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** The sim host behind a transport, when it is a SimTransport (the sim drivers need it). */
export function simHostOf(t: Transport): SimHost | undefined {
  return t instanceof SimTransport ? t.sim : undefined;
}
