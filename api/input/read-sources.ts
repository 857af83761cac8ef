// Reading manifest files: FILE, DIR (with -R recursion) or `-` for stdin, with a size cap checked
// before anything is parsed (a huge file is refused without being read into memory).

import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ManifestError } from './issues.js';

/** Default cap per file: 4 MiB. */
export const DEFAULT_MAX_FILE_BYTES = 4 * 1024 * 1024;
export const STDIN_NAME = '<stdin>';
const MANIFEST_EXT = /\.(ya?ml|json)$/i;

export interface SourceText {
  file: string;
  text: string;
}

export interface ReadOptions {
  /** Recurse into subdirectories of a DIR argument. */
  recursive?: boolean;
  /** What `-` reads; default process.stdin. */
  stdin?: Readable;
  maxFileBytes?: number;
}

/** Expands the arguments to the files they name (directories: *.yaml, *.yml, *.json in sorted order). */
export async function listManifestFiles(paths: string[], opts: ReadOptions = {}): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    if (p === '-') {
      out.push('-');
      continue;
    }
    let st;
    try {
      st = await stat(p);
    } catch (err) {
      throw new ManifestError([{ file: p, message: `cannot read: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}` }], { cause: err });
    }
    if (st.isDirectory()) out.push(...(await walk(p, opts.recursive ?? false)));
    else out.push(p);
  }
  return out;
}

async function walk(dir: string, recursive: boolean): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (recursive && !e.name.startsWith('.')) out.push(...(await walk(p, true)));
    } else if (MANIFEST_EXT.test(e.name)) {
      out.push(p);
    }
  }
  return out;
}

/** Reads one file (or stdin for `-`), refusing more than maxFileBytes before reading it. */
export async function readSource(file: string, opts: ReadOptions = {}): Promise<SourceText> {
  const max = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  if (file === '-') return { file: STDIN_NAME, text: await readCapped(opts.stdin ?? process.stdin, STDIN_NAME, max) };
  const fh = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new ManifestError([{ file, message: `cannot read: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}` }], { cause: err });
  });
  try {
    const { size } = await fh.stat();
    if (size > max) throw tooLarge(file, size, max);
    return { file, text: await readCapped(fh.createReadStream({ autoClose: false }), file, max) };
  } finally {
    await fh.close();
  }
}

function tooLarge(file: string, size: number | undefined, max: number): ManifestError {
  const got = size === undefined ? 'more than that' : `${size} bytes`;
  return new ManifestError([{ file, message: `file too large: ${got}, the limit is ${max} bytes; split it into several files` }]);
}

async function readCapped(stream: Readable, file: string, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += b.length;
    if (total > max) {
      stream.destroy();
      throw tooLarge(file, undefined, max);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}
