// Runs vcctl in-process (main from cli/vcctl.ts) with captured output, against a given store.

import { PassThrough, Readable } from 'node:stream';
import { main } from '../../cli/vcctl.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function vcctl(storeUrl: string, args: string[], stdin = ''): Promise<RunResult> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (d: Buffer) => (stdout += d.toString()));
  err.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await main(args, {
    stdout: out, stderr: err, stdin: Readable.from([stdin]),
    env: { ...process.env, VCCTL_STORE: storeUrl },
  });
  return { code, stdout, stderr };
}
