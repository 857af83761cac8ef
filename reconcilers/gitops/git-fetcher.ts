// Fetching a GitSource's repository (spec.url) into a cache directory and checking out the commit
// spec.ref names, with real git, for vc-manager's gitops controller.
//
// Contract of checkoutSource:
// - Every branch and tag of the remote is fetched with forced refspecs, so a force-push (also to
//   an older commit) moves the ref here too; a branch deleted on the remote is gone here too.
// - The checkout is a real work tree detached at the commit, forced and cleaned (no file of an
//   earlier commit stays), so the sync's "is what I read exactly the commit" check holds for it.
// - Idempotent. The cache is disposable: a cache git cannot use (a lock left by a killed git, a
//   half-made repository) is removed and made again once. What a failure leaves: the cache as git
//   left it; nothing outside the cache directory.
// - Credentials are files named by the spec, never key material in the object. SSH runs with the
//   pinned known_hosts line(s) only (StrictHostKeyChecking=yes): a server with another key is
//   refused. Paths reach ssh through environment variables expanded inside a fixed command string,
//   never interpolated into it, and only paths inside the cache (the key through a link there), so
//   ssh's own %-token and ${ENV} expansion never sees a user's path; the https token goes to git through GIT_CONFIG_* variables, never
//   on a command line. Only the ssh, https and file protocols are allowed (GIT_ALLOW_PROTOCOL).

import { constants } from 'node:fs';
import { access, mkdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { GitCommandError, runGit } from './git-work-tree.js';
import type { GitSourceSpec } from './sync-status.js';

export const DEFAULT_REF = 'main';
const FETCH_TIMEOUT_MS = 5 * 60_000;

/** A failure with the GitSource reason it should be reported with (see sync-status). */
export class CheckoutError extends Error {
  constructor(
    message: string,
    public readonly reason: 'FetchFailed' | 'ValidationFailed',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CheckoutError';
  }
}

export interface CheckoutOptions {
  /** This source's own cache directory (made when missing). */
  cacheDir: string;
  env?: NodeJS.ProcessEnv;
  /** Ends git when aborted (leadership lost, shutdown, reconcile timeout). */
  signal?: AbortSignal;
}

export interface Checkout {
  /** The directory to read: spec.path inside the checkout (a real path). */
  dir: string;
  /** The commit checked out. */
  commit: string;
  /** spec.path, how files are named in messages ("clusters/a.yaml"). */
  displayRoot: string;
}

export function isSshUrl(url: string): boolean {
  return url.startsWith('ssh://') || /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:/.test(url);
}

/** Fetches spec.url into cacheDir and checks out the commit of spec.ref. */
export async function checkoutSource(spec: GitSourceSpec, opts: CheckoutOptions): Promise<Checkout> {
  if (!spec.url) throw new CheckoutError('spec.url is not set', 'ValidationFailed');
  const path = spec.path ?? '.';
  if (path.split('/').some((seg) => seg === '..' || seg === '.git')) {
    throw new CheckoutError(`spec.path ${JSON.stringify(path)} must stay inside the repository (no ".." or ".git")`, 'ValidationFailed');
  }
  await mkdir(opts.cacheDir, { recursive: true, mode: 0o700 });
  const env = await credentialEnv(spec, opts);
  const repo = join(opts.cacheDir, 'repo');
  let commit: string;
  try {
    commit = await fetchAndCheckout(repo, spec, env, opts.signal);
  } catch (err) {
    if (!(err instanceof GitCommandError) || !/\.lock'?: File exists|not a git repository|unable to read tree|bad object/i.test(err.message)) throw err;
    // A cache git cannot use: start it again from nothing, once.
    await rm(repo, { recursive: true, force: true });
    commit = await fetchAndCheckout(repo, spec, env, opts.signal);
  }
  const top = await realpath(repo);
  let dir: string;
  try {
    dir = await realpath(join(repo, path));
  } catch {
    throw new CheckoutError(`spec.path ${path} does not exist in commit ${commit} of ${spec.url}`, 'ValidationFailed');
  }
  if (!(dir === top || dir.startsWith(top + sep)) || dir.startsWith(join(top, '.git'))) {
    throw new CheckoutError(`spec.path ${path} leads outside the repository in commit ${commit} (a symbolic link?); refusing it`, 'ValidationFailed');
  }
  return { dir, commit, displayRoot: path };
}

async function fetchAndCheckout(repo: string, spec: GitSourceSpec, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<string> {
  const git = (args: string[]) => runGit(repo, ['-c', 'core.hooksPath=/dev/null', ...args], env, FETCH_TIMEOUT_MS, { signal });
  if (!(await exists(join(repo, '.git', 'HEAD')))) {
    await rm(repo, { recursive: true, force: true });
    await mkdir(repo, { recursive: true });
    await git(['init', '--quiet']);
  }
  try {
    await git(['fetch', '--quiet', '--force', '--prune', '--no-tags', '--', spec.url!,
      '+refs/heads/*:refs/vl/heads/*', '+refs/tags/*:refs/vl/tags/*']);
  } catch (err) {
    throw new CheckoutError(`cannot fetch ${spec.url}: ${fetchHint((err as GitCommandError).stderr || (err as Error).message)}`, 'FetchFailed', { cause: err });
  }
  const commit = await resolveRef(git, spec.ref ?? DEFAULT_REF, spec.url!);
  await git(['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--force', '--detach', commit]);
  await git(['clean', '--quiet', '-ffdx']);
  return commit;
}

/** The commit of a branch, a tag (peeled), a full ref name or a full commit id. */
async function resolveRef(git: (args: string[]) => Promise<string>, ref: string, url: string): Promise<string> {
  const candidates = /^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(ref)
    ? [ref]
    : ref.startsWith('refs/heads/') ? [`refs/vl/heads/${ref.slice(11)}`]
      : ref.startsWith('refs/tags/') ? [`refs/vl/tags/${ref.slice(10)}`]
        : [`refs/vl/heads/${ref}`, `refs/vl/tags/${ref}`];
  for (const c of candidates) {
    try {
      const out = (await git(['rev-parse', '--verify', '--quiet', '--end-of-options', `${c}^{commit}`])).trim();
      if (out) return out;
    } catch {
      // not this one
    }
  }
  throw new CheckoutError(`spec.ref ${ref} is neither a branch, a tag nor a fetched commit of ${url}`, 'FetchFailed');
}

function fetchHint(stderr: string): string {
  const text = stderr.trim().split('\n').filter((l) => l.trim()).slice(-4).join('; ');
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No .* host key is known/i.test(stderr)) {
    return `${text}. The server's host key is not the one pinned in spec.ssh.knownHosts; nothing was fetched`;
  }
  if (/Permission denied/i.test(stderr)) return `${text}. Check spec.ssh.identityFile (or spec.https.tokenFile)`;
  return text;
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(() => true, () => false);
}

// A fixed command string: the paths come from variables the shell expands as single words.
const SSH_BASE = 'ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UpdateHostKeys=no ' +
  '-o GlobalKnownHostsFile=/dev/null -o "UserKnownHostsFile=$VIRTUALINUX_GIT_KNOWN_HOSTS" -o ConnectTimeout=15';
const SSH_WITH_KEY = `${SSH_BASE} -o IdentitiesOnly=yes -i "$VIRTUALINUX_GIT_IDENTITY"`;

/**
 * ssh reads its file options with its own syntax (%-tokens, ${ENV}, white space separating
 * several known_hosts files), so it only ever gets paths inside the cache directory, checked to
 * hold none of that; the user's key is reached through a link there.
 */
function checkCachePath(cacheDir: string): void {
  if (/[\s%$'"\\]/.test(cacheDir)) {
    throw new CheckoutError(`the gitops cache directory ${cacheDir} holds white space, quotes, % or $, which ssh would interpret; ` +
      'choose another VIRTUALINUX_GITOPS_CACHE', 'FetchFailed');
  }
}

async function credentialEnv(spec: GitSourceSpec, opts: CheckoutOptions): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = {
    ...(opts.env ?? process.env),
    GIT_TERMINAL_PROMPT: '0',
    GIT_ALLOW_PROTOCOL: 'ssh:https:file',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_CONFIG_COUNT: '0',
  };
  delete env.GIT_SSH;
  delete env.GIT_ASKPASS;
  delete env.SSH_ASKPASS;
  const url = spec.url!;
  if (isSshUrl(url)) {
    if (!spec.ssh?.knownHosts) {
      throw new CheckoutError(`${url} is an ssh url: set spec.ssh.knownHosts to the server's pinned known_hosts line (its key is never learnt)`, 'ValidationFailed');
    }
    checkCachePath(opts.cacheDir);
    const knownHosts = join(opts.cacheDir, 'known_hosts');
    await writeFile(knownHosts, spec.ssh.knownHosts.endsWith('\n') ? spec.ssh.knownHosts : `${spec.ssh.knownHosts}\n`, { mode: 0o600 });
    env.VIRTUALINUX_GIT_KNOWN_HOSTS = knownHosts;
    if (spec.ssh.identityFile) {
      const key = spec.ssh.identityFile;
      await access(key, constants.R_OK).catch((err: Error) => {
        throw new CheckoutError(`spec.ssh.identityFile ${key} cannot be read on this manager: ${err.message}`, 'FetchFailed');
      });
      const link = join(opts.cacheDir, 'identity');
      await rm(link, { force: true });
      await symlink(key, link);
      env.VIRTUALINUX_GIT_IDENTITY = link;
      env.GIT_SSH_COMMAND = SSH_WITH_KEY;
    } else {
      env.GIT_SSH_COMMAND = SSH_BASE;
    }
  } else if (url.startsWith('https://') && spec.https) {
    let token: string;
    try {
      token = (await readFile(spec.https.tokenFile, 'utf8')).trim();
    } catch (err) {
      throw new CheckoutError(`spec.https.tokenFile ${spec.https.tokenFile} cannot be read on this manager: ${(err as Error).message}`, 'FetchFailed');
    }
    const basic = Buffer.from(`${spec.https.username ?? 'x-access-token'}:${token}`).toString('base64');
    env.GIT_CONFIG_COUNT = '1';
    env.GIT_CONFIG_KEY_0 = 'http.extraHeader';
    env.GIT_CONFIG_VALUE_0 = `Authorization: Basic ${basic}`;
  }
  return env;
}
