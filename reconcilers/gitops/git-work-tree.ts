// The git side of a sync source: is DIR inside a work tree, which commit is checked out, does the
// checkout differ from it, and a fast-forward pull from the tracked remote. git is always run
// with an argument vector (execFile, no shell), and `-C <dir>` so that no path is ever parsed by
// a shell or mistaken for an option.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { isReadByWalk } from '../../api/input/index.js';

/** Environment for every git call: no prompts (a sync runs unattended), stable English output. */
function gitEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' };
}

export class GitCommandError extends Error {
  constructor(
    message: string,
    public readonly argv: readonly string[],
    public readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'GitCommandError';
  }
}

export interface GitRunOptions {
  timeoutMs?: number;
  /** Ends git (SIGTERM: git removes its lock files) when aborted. */
  signal?: AbortSignal;
}

/** Runs `git -C dir ...args` and returns stdout. Rejects with GitCommandError (stderr included). */
export async function runGit(
  dir: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 120_000,
  opts: GitRunOptions = {},
): Promise<string> {
  return (await runGitBytes(dir, args, env, { timeoutMs, ...opts })).toString('utf8');
}

/** runGit with stdout as bytes (paths of `-z` output are the file system's bytes, not UTF-8). */
export function runGitBytes(
  dir: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  opts: GitRunOptions = {},
): Promise<Buffer> {
  const argv = ['-C', dir, ...args];
  return new Promise((resolve, reject) => {
    execFile('git', argv, {
      env: gitEnv(env), timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, encoding: 'buffer', signal: opts.signal,
    }, (err, stdout, stderr) => {
      if (err) {
        const detail = stderr.toString('utf8').trim() || err.message;
        reject(new GitCommandError(`git ${args.join(' ')} in ${dir} failed: ${detail}`, argv, stderr.toString('utf8'), { cause: err }));
        return;
      }
      resolve(stdout);
    });
  });
}

/**
 * The top directory of the git work tree that contains `dir`, or undefined when `dir` is not in a
 * work tree (or git is not installed: a plain directory sync does not need it).
 */
export async function findWorkTreeRoot(dir: string, env?: NodeJS.ProcessEnv): Promise<string | undefined> {
  try {
    const inside = (await runGit(dir, ['rev-parse', '--is-inside-work-tree'], env)).trim();
    if (inside !== 'true') return undefined;
    return (await runGit(dir, ['rev-parse', '--show-toplevel'], env)).trim();
  } catch {
    return undefined;
  }
}

/** The commit checked out (`git rev-parse HEAD`); undefined in a repository without commits. */
export async function readHeadCommit(dir: string, env?: NodeJS.ProcessEnv): Promise<string | undefined> {
  try {
    return (await runGit(dir, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], env)).trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the files under `dir` differ from HEAD (modified, staged, deleted or untracked, ignored
 * files excepted): the sync then applies content that no commit holds, and says so in the
 * revision it records.
 */
export async function hasUncommittedChanges(dir: string, env?: NodeJS.ProcessEnv): Promise<boolean> {
  const out = await runGit(dir, ['status', '--porcelain', '--untracked-files=all', '--', '.'], env);
  return out.trim().length > 0;
}

/**
 * `git pull --ff-only` in the work tree of `dir`, from the remote its branch tracks. Never merges
 * or rebases: a diverged work tree is an error the operator resolves. Returns the HEAD commit
 * before and after.
 */
export async function pullFastForward(
  dir: string,
  env?: NodeJS.ProcessEnv,
): Promise<{ before: string | undefined; after: string | undefined }> {
  const before = await readHeadCommit(dir, env);
  try {
    await runGit(dir, ['pull', '--ff-only', '--quiet'], env);
  } catch (err) {
    const e = err as GitCommandError;
    throw new GitCommandError(
      `${e.message}; the sync keeps the checked-out commit. Check that the branch tracks a reachable ` +
        'remote and has not diverged from it (git status, git pull --ff-only)',
      e.argv,
      e.stderr,
      { cause: err },
    );
  }
  return { before, after: await readHeadCommit(dir, env) };
}

/** A file a sync read: its path relative to the synced directory (bytes) and the git blob ids of its content. */
export interface ReadFileDigest {
  rel: Buffer;
  sha1: string;
  sha256: string;
}

/** The digests git would give `bytes` as a blob (sha1 and sha256 object formats). */
export function digestOf(rel: Buffer, bytes: Buffer): ReadFileDigest {
  const header = Buffer.from(`blob ${bytes.length}\0`);
  const blob = (algo: string) => createHash(algo).update(header).update(bytes).digest('hex');
  return { rel, sha1: blob('sha1'), sha256: blob('sha256') };
}

interface TreeEntry {
  mode: string;
  oid: string;
}

/**
 * Whether what a sync read under `dir` is exactly what HEAD holds there: the same manifest files
 * (by the directory walk's rules, api/input isReadByWalk), each with the committed content; a
 * committed symbolic link still the same link on disk, and what was read through it the committed
 * content of its target. Anything else (a modified, untracked or ignored file, a link replaced or
 * pointing elsewhere than committed, a file changed while it was read) is false: the revision is
 * then recorded as dirty, never as the commit.
 */
export async function readMatchesHead(dir: string, files: readonly ReadFileDigest[], env?: NodeJS.ProcessEnv): Promise<boolean> {
  let out: Buffer;
  try {
    out = await runGitBytes(dir, ['ls-tree', '-r', '-z', 'HEAD'], env);
  } catch {
    return false;
  }
  const tree = new Map<string, TreeEntry>();
  for (const rec of splitZ(out)) {
    const tab = rec.indexOf(0x09);
    if (tab < 0) continue;
    const [mode, , oid] = rec.subarray(0, tab).toString('latin1').split(' ');
    tree.set(rec.subarray(tab + 1).toString('latin1'), { mode, oid });
  }
  const expected = [...tree.entries()].filter(([rel, e]) => e.mode !== '160000' && e.mode !== '040000' && isReadByWalk(rel));
  if (expected.length !== files.length) return false;
  const blobOf = (d: ReadFileDigest, oid: string) => (oid.length === 64 ? d.sha256 : d.sha1);
  for (const f of files) {
    const rel = f.rel.toString('latin1');
    const e = tree.get(rel);
    if (!e) return false;
    if (e.mode !== '120000') {
      if (blobOf(f, e.oid) !== e.oid) return false;
      continue;
    }
    // A committed link: the link on disk must be the committed one, and the content read its target's.
    let link: Buffer;
    try {
      link = await readlink(Buffer.concat([Buffer.from(`${dir}/`), f.rel]), { encoding: 'buffer' });
    } catch {
      return false;
    }
    if (blobOf(digestOf(f.rel, link), e.oid) !== e.oid) return false;
    const target = posix.normalize(posix.join(posix.dirname(rel), link.toString('latin1')));
    const t = tree.get(target);
    if (link[0] === 0x2f || target.startsWith('../') || !t || (t.mode !== '100644' && t.mode !== '100755')) return false;
    if (blobOf(f, t.oid) !== t.oid) return false;
  }
  return true;
}

function splitZ(out: Buffer): Buffer[] {
  const recs: Buffer[] = [];
  let start = 0;
  for (let i = out.indexOf(0); i >= 0; i = out.indexOf(0, start)) {
    recs.push(out.subarray(start, i));
    start = i + 1;
  }
  if (start < out.length) recs.push(out.subarray(start));
  return recs;
}
