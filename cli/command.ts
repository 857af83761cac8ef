// The contract of a vcctl command. The dispatcher (cli/vcctl.ts) loads the module of the command
// named on the command line only when it runs (fast start-up): each command lives in
// cli/commands/<name>.ts and is listed in cli/commands/registry.ts.

import type { Readable, Writable } from 'node:stream';

export interface CommandContext {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
  env: NodeJS.ProcessEnv;
}

export interface Command {
  /** One line for `vcctl help`. */
  summary: string;
  /** Usage text for `vcctl <name> --help`. */
  usage: string;
  /** Runs with the arguments after the command name. Returns the exit code. Errors a user can
   * fix are printed (file, document, JSON path) to ctx.stderr and give a non-zero code; no stack. */
  run(argv: string[], ctx: CommandContext): Promise<number>;
}
