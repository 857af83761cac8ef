// Runs test files in a child mocha with extra environment (e.g. VL_E2E_STORE=etcd-cluster), its
// output passed through indented, so that a test can rerun other tests unchanged under another
// set-up with their own before/after hooks.

import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ChildMochaResult {
  code: number | null;
  out: string;
  /** From the plain reporter's summary line; undefined when there was none. */
  summary?: { passed: number; failed: number; skipped: number };
}

export async function runChildMocha(files: string[], env: Record<string, string>): Promise<ChildMochaResult> {
  const child = spawn(process.execPath, [join(ROOT, 'node_modules/mocha/bin/mocha.js'), ...files], {
    cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    process.stdout.write(d.toString().replace(/^/gm, '      | '));
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  const m = /(\d+) passed, (\d+) failed, (\d+) skipped/.exec(out);
  return { code, out, summary: m ? { passed: Number(m[1]), failed: Number(m[2]), skipped: Number(m[3]) } : undefined };
}
