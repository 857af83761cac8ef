// Reading manifest files: FILE, DIR (with -R recursion) or `-` for stdin, with a size cap checked
// before anything is parsed (a huge file is refused without being read into memory).
//
// What a directory walk reads (a DIR argument, `vcctl apply -f DIR` and the GitOps sync alike):
// - regular files named *.yaml, *.yml, *.json, in byte order of their names; dot-directories are
//   skipped. Anything else with such a name (a FIFO, a socket, a device) is refused with a message
//   naming it, and never opened in a way that could block (a FIFO with no writer would hang).
// - names as the bytes the file system holds: a name that is not valid UTF-8 is still read, and
//   shown in messages with the undecodable bytes (and control characters) as \xNN.
// - symbolic links to files are followed; with `confine` (the sync) a link that resolves outside
//   the DIR argument is refused, naming the link, so that a committed link cannot pull content
//   from elsewhere on the machine. Links to directories are not followed.
// A FILE the user names explicitly is read whatever it is (`-f <(generate)` reads a pipe).

import { constants } from 'node:fs';
import { lstat, open, readdir, realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { normalize } from 'node:path';
import type { Readable } from 'node:stream';
import { ManifestError, type InputIssue } from './issues.js';

/** Default cap per file: 4 MiB. */
export const DEFAULT_MAX_FILE_BYTES = 4 * 1024 * 1024;
export const STDIN_NAME = '<stdin>';
const MANIFEST_EXT = /\.(ya?ml|json)$/i;
const SLASH = Buffer.from('/');

export interface SourceText {
  file: string;
  text: string;
}

/** A file to read: what is opened, and how messages name it. */
export interface ListedFile {
  /** The path to open: bytes when the name is not valid UTF-8 (a decoded string would not open). */
  path: string | Buffer;
  /** The path in messages (see displayPath). */
  file: string;
  /** Found by walking a directory, not named by the user: only a regular file is read. */
  walked: boolean;
}

export interface ReadOptions {
  /** Recurse into subdirectories of a DIR argument. */
  recursive?: boolean;
  /** What `-` reads; default process.stdin. */
  stdin?: Readable;
  maxFileBytes?: number;
  /** Refuse symbolic links under a DIR argument that resolve outside it (the GitOps sync). */
  confine?: boolean;
  /** Name walked files in messages as `${displayRoot}/REL` instead of `DIR/REL` (the sync: the path in the repository). */
  displayRoot?: string;
  /** Called with the bytes of every file read (not stdin): the sync compares them with the commit. */
  onRead?: (file: ListedFile, bytes: Buffer) => void;
}

/**
 * A path for messages: control characters and, in a name that is not valid UTF-8, every byte
 * above 0x7f as \xNN, so that a name can neither write to a terminal nor be mistaken for another.
 */
export function displayPath(path: string | Buffer): string {
  const bytes = typeof path === 'string' ? Buffer.from(path) : path;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    text = Array.from(bytes, (b) => (b >= 0x80 ? hex(b) : String.fromCharCode(b))).join('');
  }
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => hex(c.charCodeAt(0)));
}

function hex(code: number): string {
  return `\\x${code.toString(16).padStart(2, '0')}`;
}

/**
 * Expands the arguments to the files they name (directories: *.yaml, *.yml, *.json in sorted
 * order), as they are named in messages; listFiles also gives the paths to open them by.
 */
export async function listManifestFiles(paths: string[], opts: ReadOptions = {}): Promise<string[]> {
  const { files, issues } = await listFiles(paths, opts);
  if (issues.length > 0) throw new ManifestError(issues);
  return files.map((f) => f.file);
}

/** Like listManifestFiles, but returns what it refused as issues beside the files it can read. */
export async function listFiles(paths: string[], opts: ReadOptions = {}): Promise<{ files: ListedFile[]; issues: InputIssue[] }> {
  const files: ListedFile[] = [];
  const issues: InputIssue[] = [];
  for (const p of paths) {
    if (p === '-') {
      files.push({ path: '-', file: '-', walked: false });
      continue;
    }
    let st;
    try {
      st = await stat(p);
    } catch (err) {
      throw new ManifestError([{ file: displayPath(p), message: `cannot read: ${openErrorText(p, err)}` }], { cause: err });
    }
    if (!st.isDirectory()) {
      files.push({ path: p, file: displayPath(p), walked: false });
      continue;
    }
    const root = Buffer.from(normalize(p).replace(/(.)\/+$/, '$1'));
    const walk: Walk = {
      recursive: opts.recursive ?? false,
      confinedTo: opts.confine ? await realpath(root, { encoding: 'buffer' }) : undefined,
      root,
      displayRoot: opts.displayRoot,
      files,
      issues,
    };
    await walkDir(walk, root);
  }
  return { files, issues };
}

interface Walk {
  recursive: boolean;
  /** The real path of the DIR argument links must stay in; undefined = links unconfined. */
  confinedTo?: Buffer;
  root: Buffer;
  displayRoot?: string;
  files: ListedFile[];
  issues: InputIssue[];
}

function nameOf(w: Walk, path: Buffer): string {
  if (w.displayRoot === undefined) return displayPath(path);
  const rel = path.subarray(w.root.length + 1);
  return w.displayRoot === '' || w.displayRoot === '.' ? displayPath(rel) : `${w.displayRoot}/${displayPath(rel)}`;
}

async function walkDir(w: Walk, dir: Buffer): Promise<void> {
  const names = await readdir(dir, { encoding: 'buffer' });
  names.sort(Buffer.compare);
  for (const name of names) {
    const p = Buffer.concat([dir, SLASH, name]);
    const st = await lstat(p);
    if (st.isDirectory()) {
      if (w.recursive && name[0] !== 0x2e /* "." */) await walkDir(w, p);
      continue;
    }
    if (!MANIFEST_EXT.test(name.toString('latin1'))) continue;
    const file = nameOf(w, p);
    const refuse = (message: string) => w.issues.push({ file, message });
    if (st.isSymbolicLink()) {
      let target: Buffer;
      let targetSt: Stats;
      try {
        target = await realpath(p, { encoding: 'buffer' });
        targetSt = await stat(target);
      } catch (err) {
        refuse(`is a symbolic link that cannot be followed: ${openErrorText(file, err)}`);
        continue;
      }
      if (w.confinedTo && !isWithin(target, w.confinedTo)) {
        refuse(`is a symbolic link to ${displayPath(target)}, outside the synced directory ${displayPath(w.confinedTo)}; ` +
          'refusing to read it (a link must point to a file inside the directory)');
        continue;
      }
      if (targetSt.isDirectory()) continue; // links to directories are not followed
      if (!targetSt.isFile()) {
        refuse(`is a symbolic link to ${fileType(targetSt)}, not a regular file; not read`);
        continue;
      }
    } else if (!st.isFile()) {
      refuse(`is ${fileType(st)}, not a regular file; not read`);
      continue;
    }
    w.files.push({ path: isUtf8Name(p) ? p.toString('utf8') : p, file, walked: true });
  }
}

/**
 * Whether a walk of a directory with -R reads the file at `rel` (a path relative to the directory,
 * "/"-separated, as bytes in latin1 or as text): a manifest name, and no dot-directory on the way.
 */
export function isReadByWalk(rel: string): boolean {
  const parts = rel.split('/');
  return MANIFEST_EXT.test(parts[parts.length - 1]) && parts.slice(0, -1).every((d) => !d.startsWith('.'));
}

function isWithin(path: Buffer, dir: Buffer): boolean {
  return path.equals(dir) || (path.length > dir.length && path.subarray(0, dir.length).equals(dir) && path[dir.length] === 0x2f);
}

function isUtf8Name(p: Buffer): boolean {
  return Buffer.from(p.toString('utf8')).equals(p);
}

function fileType(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isDirectory()) return 'a directory';
  return 'not a regular file';
}

function openErrorText(name: string | Buffer, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== 'ENOENT') return (err as Error).message;
  // Node decodes command-line arguments as UTF-8: bytes that are not valid UTF-8 arrive as U+FFFD
  // and name no file. Say so instead of a bare "no such file".
  if (typeof name === 'string' && name.includes('\ufffd')) {
    return 'no such file or directory (the name holds bytes that are not valid UTF-8 and cannot be passed as an ' +
      'argument; name the directory that holds it instead)';
  }
  return 'no such file or directory';
}

/** Reads one file (or stdin for `-`), refusing more than maxFileBytes before reading it. */
export async function readSource(source: string | ListedFile, opts: ReadOptions = {}): Promise<SourceText> {
  const f: ListedFile = typeof source === 'string' ? { path: source, file: displayPath(source), walked: false } : source;
  const max = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  if (f.path === '-') {
    return { file: STDIN_NAME, text: (await readCapped(opts.stdin ?? process.stdin, STDIN_NAME, max)).toString('utf8') };
  }
  // A walked file is opened without blocking: if it was replaced by a FIFO since the walk, the
  // open returns at once and fstat shows what it is.
  const flags = f.walked ? constants.O_RDONLY | constants.O_NONBLOCK : constants.O_RDONLY;
  const fh = await open(f.path, flags).catch((err: NodeJS.ErrnoException) => {
    throw new ManifestError([{ file: f.file, message: `cannot read: ${openErrorText(f.path, err)}` }], { cause: err });
  });
  try {
    const st = await fh.stat();
    if (f.walked && !st.isFile()) throw new ManifestError([{ file: f.file, message: `is ${fileType(st)}, not a regular file; not read` }]);
    if (st.size > max) throw tooLarge(f.file, st.size, max);
    const bytes = await readCapped(fh.createReadStream({ autoClose: false }), f.file, max);
    opts.onRead?.(f, bytes);
    return { file: f.file, text: bytes.toString('utf8') };
  } finally {
    await fh.close();
  }
}

function tooLarge(file: string, size: number | undefined, max: number): ManifestError {
  const got = size === undefined ? 'more than that' : `${size} bytes`;
  return new ManifestError([{ file, message: `file too large: ${got}, the limit is ${max} bytes; split it into several files` }]);
}

async function readCapped(stream: Readable, file: string, max: number): Promise<Buffer> {
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
  return Buffer.concat(chunks);
}
