// The git side of a sync source: is DIR inside a work tree, which commit is checked out, does the
// checkout differ from it, and a fast-forward pull from the tracked remote. git is always run
// with an argument vector (execFile, no shell), and `-C <dir>` so that no path is ever parsed by
// a shell or mistaken for an option.

import { execFile } from 'node:child_process';

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

/** Runs `git -C dir ...args` and returns stdout. Rejects with GitCommandError (stderr included). */
export function runGit(
  dir: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 120_000,
): Promise<string> {
  const argv = ['-C', dir, ...args];
  return new Promise((resolve, reject) => {
    execFile('git', argv, { env: gitEnv(env), timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const detail = String(stderr).trim() || err.message;
        reject(new GitCommandError(`git ${args.join(' ')} in ${dir} failed: ${detail}`, argv, String(stderr), { cause: err }));
        return;
      }
      resolve(String(stdout));
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
