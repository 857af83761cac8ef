// A Transport that runs nothing: it records every argv and file write, and answers commands from
// a script of canned results (for Xen, which cannot run on this machine). Tests built on it say
// so in their names ("recorded").

import { PassThrough, type Duplex } from 'node:stream';
import type { ConnectTarget, ExecOptions, ExecResult, SpawnedProcess, Transport } from '../../drivers/transport/types.js';

/** A canned exit code meaning: the spawned process runs until it is killed. */
export const HANG = -999;

export type Recorded = { argv: string[] } | { writeFile: string; data: string };

export interface CannedAnswer {
  /** Matches when argv starts with these elements. */
  prefix: string[];
  result: ExecResult | ((argv: readonly string[]) => ExecResult);
  /** Answer only this many times (then the next matching answer applies); default unlimited. */
  times?: number;
}

export class RecordingTransport implements Transport {
  readonly log: Recorded[] = [];
  readonly files = new Map<string, string>();
  private readonly answers: CannedAnswer[] = [];

  constructor(readonly host: string) {}

  answer(prefix: string[], result: CannedAnswer['result'], times?: number): this {
    this.answers.push({ prefix, result, times });
    return this;
  }

  protected respond(argv: readonly string[]): ExecResult {
    for (const a of this.answers) {
      if (a.times === 0) continue;
      if (a.prefix.every((p, i) => argv[i] === p)) {
        if (a.times !== undefined) a.times--;
        return typeof a.result === 'function' ? a.result(argv) : a.result;
      }
    }
    return { code: 0, stdout: '', stderr: '' };
  }

  /** Only the commands, without file writes. */
  get commands(): string[][] {
    return this.log.flatMap((r) => ('argv' in r ? [r.argv] : []));
  }

  async exec(argv: readonly string[], _opts?: ExecOptions): Promise<ExecResult> {
    this.log.push({ argv: [...argv] });
    return this.respond(argv);
  }

  spawn(argv: readonly string[], _opts?: Omit<ExecOptions, 'stdin'>): SpawnedProcess {
    this.log.push({ argv: [...argv] });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let release: (r: ExecResult) => void = () => {};
    const done = new Promise<ExecResult>((resolve) => (release = resolve));
    const result = this.respond(argv);
    const finish = (r: ExecResult): void => {
      if (r.stderr) stderr.write(r.stderr);
      stdout.end();
      stderr.end();
      release({ ...r, stdout: '', stderr: '' });
    };
    if (result.code !== HANG) setImmediate(() => finish(result));
    return {
      stdin: new PassThrough(),
      stdout,
      stderr,
      done,
      kill: () => {
        this.log.push({ argv: ['<kill>', ...argv] });
        finish({ code: 143, stdout: '', stderr: 'killed', signal: 'SIGTERM' });
      },
    };
  }

  async connect(_target: ConnectTarget): Promise<Duplex> {
    throw new Error('RecordingTransport cannot connect');
  }

  async writeFile(path: string, data: string | Buffer): Promise<void> {
    const text = data.toString();
    this.files.set(path, text);
    this.log.push({ writeFile: path, data: text });
  }

  async close(): Promise<void> {}
}
