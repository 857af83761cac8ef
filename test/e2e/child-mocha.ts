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
  /** The child's failure report (from its "N failing" line on, at most 6,000 characters), or '' when
   *  it printed none: put into the parent's assertion message, so that a CI log which keeps only the
   *  parent's summary still says which child test failed and why. */
  failures: string;
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
  const f = /^\s*\d+ failing$/m.exec(out);
  const failures = f ? out.slice(f.index, f.index + 6_000) : '';
  return {
    code, out, failures,
    summary: m ? { passed: Number(m[1]), failed: Number(m[2]), skipped: Number(m[3]) } : undefined,
  };
}
