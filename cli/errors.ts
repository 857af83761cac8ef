// How vcctl prints errors: `error: ` and the message, one line per problem, no stack trace
// (VCCTL_DEBUG=1 adds it). Manifest errors already name file, document, line and JSON path.

import type { Writable } from 'node:stream';
import { UsageError } from './args.js';
import { escapeControl } from './output/escape.js';

export function printError(err: unknown, stderr: Writable, env: NodeJS.ProcessEnv = process.env, usageHint?: string): void {
  const e = err instanceof Error ? err : new Error(String(err));
  // Messages quote user input and stored text (file names, events): no control character raw.
  for (const line of e.message.split('\n')) stderr.write(`error: ${escapeControl(line)}\n`);
  if (e instanceof UsageError && usageHint) stderr.write(`${usageHint}\n`);
  if (env.VCCTL_DEBUG) {
    stderr.write(`${e.stack ?? ''}\n`);
    let c: unknown = e.cause;
    while (c) {
      stderr.write(`caused by: ${c instanceof Error ? (c.stack ?? c.message) : String(c)}\n`);
      c = c instanceof Error ? c.cause : undefined;
    }
  }
}
