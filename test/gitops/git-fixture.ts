// Real git repositories for the gitops tests: a bare "remote", a work tree cloned from it (the
// directory a sync reads), and a second clone standing for a colleague who pushes to the remote.
// Everything lives under one temporary directory that remove() deletes.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'test', GIT_AUTHOR_EMAIL: 'test@example.invalid',
  GIT_COMMITTER_NAME: 'test', GIT_COMMITTER_EMAIL: 'test@example.invalid',
  GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_TERMINAL_PROMPT: '0',
};

export function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, ...args], { env: GIT_ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export class GitFixture {
  readonly root: string;
  /** The bare repository both clones push to and pull from. */
  readonly remote: string;
  /** The work tree a sync reads. */
  readonly work: string;
  /** Another clone that pushes commits to the remote. */
  readonly upstream: string;

  constructor(prefix = 'vc-gitops-') {
    this.root = mkdtempSync(join(tmpdir(), prefix));
    this.remote = join(this.root, 'remote.git');
    this.work = join(this.root, 'work');
    this.upstream = join(this.root, 'upstream');
    execFileSync('git', ['init', '--quiet', '--bare', '--initial-branch=main', this.remote], { env: GIT_ENV });
    execFileSync('git', ['clone', '--quiet', this.remote, this.upstream], { env: GIT_ENV, stdio: 'ignore' });
    git(this.upstream, 'checkout', '--quiet', '-B', 'main');
    this.write(this.upstream, 'README.md', 'manifests\n');
    this.commit(this.upstream, 'initial');
    git(this.upstream, 'push', '--quiet', '-u', 'origin', 'main');
    execFileSync('git', ['clone', '--quiet', '--branch', 'main', this.remote, this.work], { env: GIT_ENV, stdio: 'ignore' });
  }

  write(repo: string, rel: string, content: string): void {
    const p = join(repo, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
  }

  remove(repo: string, rel: string): void {
    unlinkSync(join(repo, rel));
  }

  /** Stages everything and commits; returns the new HEAD. */
  commit(repo: string, message: string): string {
    git(repo, 'add', '-A');
    git(repo, 'commit', '--quiet', '--allow-empty', '-m', message);
    return this.head(repo);
  }

  head(repo: string): string {
    return git(repo, 'rev-parse', 'HEAD').trim();
  }

  /** Pushes the work tree's commits to the bare remote. */
  pushWork(): void {
    git(this.work, 'push', '--quiet', 'origin', 'main');
  }

  /** Commits in the upstream clone (brought up to date first) and pushes to the bare remote. */
  pushUpstream(files: Record<string, string | null>, message: string): string {
    git(this.upstream, 'pull', '--quiet', '--ff-only', 'origin', 'main');
    for (const [rel, content] of Object.entries(files)) {
      if (content === null) this.remove(this.upstream, rel);
      else this.write(this.upstream, rel, content);
    }
    const c = this.commit(this.upstream, message);
    git(this.upstream, 'push', '--quiet', 'origin', 'main');
    return c;
  }

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
