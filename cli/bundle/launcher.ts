// The entry of the vcctl bundle: hack/build-cli.ts bundles this file as dist/cli/vcctl.js and the
// program itself (cli/vcctl.ts and everything it loads) as one CommonJS file, dist/cli/vcctl.cjs.
// This file runs that program through node:vm with V8's code cache (Node 20 has no compile cache
// for modules): the first run of a command saves the code V8 compiled for it in
// dist/cli/v8-cache/, and later runs of that command load it instead of parsing and compiling
// ~1.5 MB of JavaScript again (tens to a hundred ms of CPU of a fresh `vcctl apply`).
//
// - A cache file belongs to one build (the bundle's SHA-256 is in its name; the build empties the
//   directory) and one command. One that is damaged (its own SHA-256 differs) or that V8 refuses
//   (another V8 version or other flags) is not used: the run compiles as without it and saves a
//   new one.
// - Saved once, at exit, written to a temporary file and renamed (concurrent first runs are
//   fine); a directory that cannot be written (a read-only install) just means no cache.
// - Imported rather than run (the dashboard imports `main`), or for help, it runs the program
//   without a cache.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import type { main as Main } from '../vcctl.js';

/** Replaced by hack/build-cli.ts: the SHA-256 (hex) of vcctl.cjs and the command names. */
declare const __VL_BUNDLE_SHA256: string;
declare const __VL_COMMANDS: string[];

const dir = dirname(fileURLToPath(import.meta.url));
const file = join(dir, 'vcctl.cjs');
const invoked = /(^|[\\/])vcctl(\.[cm]?[jt]s)?$/.test(process.argv[1] ?? ''); // as cli/vcctl.ts tests it
const args = process.argv.slice(2);
const help = args.some((a) => a === 'help' || a === '-h' || a === '--help');
const command = invoked && !help ? args.find((a) => __VL_COMMANDS.includes(a)) : undefined;
const cacheFile = command && join(dir, 'v8-cache', `${__VL_BUNDLE_SHA256.slice(0, 16)}-${command}.bin`);

let cachedData: Buffer | undefined;
try {
  if (cacheFile) cachedData = verified(readFileSync(cacheFile));
} catch {
  cachedData = undefined; // not made yet
}
// The CommonJS wrapper, on the same line as the program's first line (its source map stays right).
// The build checks that the program is ASCII: read as latin1, it needs no UTF-8 decoding.
const script = new Script(`(function (exports, require, module, __filename, __dirname) {${readFileSync(file, 'latin1')}\n})`, { filename: file, cachedData });
if (cacheFile && (!cachedData || script.cachedDataRejected)) process.once('exit', () => save(cacheFile, script));

const mod = { exports: {} as { main: typeof Main } };
(script.runInThisContext() as (...args: unknown[]) => void)(mod.exports, createRequire(file), mod, file, dir);

export const main: typeof Main = mod.exports.main;

// V8 checks a cache's version, flags and source length, but not its bytes (a damaged one can
// crash the process): the file starts with the SHA-256 of the data, checked before V8 sees it.
function digest(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

function verified(file: Buffer): Buffer | undefined {
  const data = file.subarray(32);
  return file.length > 32 && digest(data).equals(file.subarray(0, 32)) ? data : undefined;
}

function save(path: string, s: Script): void {
  try {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    const data = s.createCachedData();
    writeFileSync(tmp, Buffer.concat([digest(data), data]));
    renameSync(tmp, path);
  } catch {
    // no cache where it cannot be written
  }
}
