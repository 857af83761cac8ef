// The ipmi fencing agent: ipmitool over IPMI v2.0 (lanplus) to the node's BMC. The password is
// read by ipmitool from a file (-f), never passed on the command line; everything is argv.

import { spawn } from 'node:child_process';
import { FencingError, type FencingAgent, type PowerState } from './types.js';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}
/** Runs argv[0] with the rest as arguments (no shell). */
export type CommandRunner = (argv: readonly string[], opts: { timeoutMs: number; signal?: AbortSignal }) => Promise<CommandResult>;

export interface IpmiTarget {
  host: string;
  user: string;
  passwordFile: string;
}

const TIMEOUT_MS = 20_000;

export class IpmiFencingAgent implements FencingAgent {
  readonly name = 'ipmi';
  constructor(private readonly target: IpmiTarget, private readonly run: CommandRunner = runCommand) {}

  /** ipmitool -I lanplus -H HOST -U USER -f FILE chassis power ARGS... */
  argv(...args: string[]): string[] {
    const t = this.target;
    return ['ipmitool', '-I', 'lanplus', '-H', t.host, '-U', t.user, '-f', t.passwordFile, 'chassis', 'power', ...args];
  }

  async powerOff(signal?: AbortSignal): Promise<void> {
    const r = await this.run(this.argv('off'), { timeoutMs: TIMEOUT_MS, signal });
    if (r.code !== 0) {
      throw new FencingError(`ipmitool chassis power off on ${this.target.host} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
    }
  }

  async status(signal?: AbortSignal): Promise<{ state: PowerState; detail: string }> {
    let r: CommandResult;
    try {
      r = await this.run(this.argv('status'), { timeoutMs: TIMEOUT_MS, signal });
    } catch (e) {
      return { state: 'unknown', detail: `ipmitool could not be run: ${(e as Error).message}` };
    }
    const out = r.stdout.trim();
    if (r.code !== 0) return { state: 'unknown', detail: `ipmitool chassis power status on ${this.target.host} exited ${r.code}: ${(r.stderr || out).trim().slice(0, 300)}` };
    return { state: parsePowerStatus(out), detail: out };
  }
}

/** "Chassis Power is off" -> off, "... is on" -> on, anything else unknown. */
export function parsePowerStatus(stdout: string): PowerState {
  const m = /^Chassis Power is (on|off)\s*$/m.exec(stdout);
  return m ? (m[1] as PowerState) : 'unknown';
}

/** The default runner: spawn without a shell, killed at the time limit. */
export function runCommand(argv: readonly string[], opts: { timeoutMs: number; signal?: AbortSignal }): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], signal: opts.signal });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    child.once('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr: sig ? `${stderr}killed by ${sig} (time limit ${opts.timeoutMs} ms)` : stderr });
    });
  });
}
