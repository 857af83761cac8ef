// Issue 24 items 3, 4 and 6: what a hostile or careless repository holds, read by `vcctl apply -f
// DIR` and `vcctl sync` (real vcctl processes, real git, the real embedded store): committed symbolic
// links that leave the synced directory, FIFOs named *.yaml, file names that are not UTF-8, and
// files the commit does not hold (never recorded as the clean commit).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getCondition } from '../../api/conditions.js';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import type { GitSource } from '../../reconcilers/gitops/sync-status.js';
import { GitFixture } from './git-fixture.js';
import { startVcctl, virtualCluster, type RunResult } from './sync-helpers.js';

const VC = (name: string) => ({ kind: 'VirtualCluster', namespace: 'default', name });

/** Runs vcctl as a real process; a run that has not ended after ms is killed and fails the test. */
async function vcctlWithin(args: string[], env: NodeJS.ProcessEnv, ms = 30_000): Promise<RunResult> {
  const p = startVcctl(args, env);
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    new Promise<number | null>((resolve) => p.child.once('exit', (c) => resolve(c))),
    new Promise<'hung'>((resolve) => { timer = setTimeout(() => resolve('hung'), ms); }),
  ]);
  clearTimeout(timer);
  if (code === 'hung') {
    p.child.kill('SIGKILL');
    assert.fail(`vcctl ${args.join(' ')} still ran after ${ms} ms (hung); stderr: ${p.stderr()}`);
  }
  return { code: code ?? -1, stdout: p.stdout(), stderr: p.stderr() };
}

describe('gitops: hostile repository contents (apply -f DIR and sync)', function () {
  this.timeout(120_000);
  let fx: GitFixture;
  let store: SqliteStore;
  let env: NodeJS.ProcessEnv;

  beforeEach(() => {
    fx = new GitFixture('vc-gitops-hostile-');
    const storePath = join(fx.root, 'store.db');
    store = new SqliteStore(storePath);
    env = { ...process.env, VCCTL_STORE: `file:${storePath}` };
    fx.write(fx.work, 'clusters/a.yaml', virtualCluster('a', 1));
  });
  afterEach(async () => {
    await store.close();
    fx.cleanup();
  });

  const source = (name: string) => store.get<GitSource>({ kind: 'GitSource', namespace: 'default', name });

  it('24.4: a FIFO named *.yaml is refused by name, without hanging apply -f DIR or sync', async () => {
    execFileSync('mkfifo', [join(fx.work, 'clusters', 'pipe.yaml')]);
    const apply = await vcctlWithin(['apply', '-R', '-f', join(fx.work, 'clusters')], env);
    assert.equal(apply.code, 1, apply.stdout);
    assert.match(apply.stderr, /clusters\/pipe\.yaml: is a FIFO \(named pipe\), not a regular file; not read/);
    assert.equal(await store.tryGet(VC('a')), undefined, 'nothing written');

    const sync = await vcctlWithin(['sync', '--dir', join(fx.work, 'clusters'), '--name', 'fifo'], env);
    assert.equal(sync.code, 1, sync.stdout);
    assert.match(sync.stderr, /ValidationFailed/);
    assert.match(sync.stderr, /pipe\.yaml: is a FIFO \(named pipe\), not a regular file; not read/);
    assert.equal(await store.tryGet(VC('a')), undefined);
    assert.match((await source('fifo')).status?.lastError ?? '', /pipe\.yaml: is a FIFO/);
  });

  it('24.6: a file name that is not UTF-8 is read by apply and sync, and named with \\xNN in errors', async () => {
    const dir = join(fx.work, 'clusters');
    const latin1 = Buffer.concat([Buffer.from(`${dir}/caf`), Buffer.from([0xe9]), Buffer.from('.yaml')]);
    writeFileSync(latin1, virtualCluster('cafe', 1));
    const apply = await vcctlWithin(['apply', '-f', dir], env);
    assert.equal(apply.code, 0, apply.stderr);
    assert.match(apply.stdout, /virtualcluster\/cafe created/);

    const commit = fx.commit(fx.work, 'a latin-1 file name');
    const sync = await vcctlWithin(['sync', '--dir', dir, '--name', 'names'], env);
    assert.equal(sync.code, 0, sync.stderr);
    assert.equal((await source('names')).status?.lastAppliedRevision, commit, 'read exactly as committed: the clean commit');

    writeFileSync(latin1, virtualCluster('cafe', 1).replace('Block', 'Blocky'));
    const bad = await vcctlWithin(['apply', '-f', dir], env);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /clusters\/caf\\xe9\.yaml: document 1 \(line \d+\): spec\.placement\.strategy: must be one of Block, Cyclic/);
    assert.doesNotMatch(bad.stderr, /no such file/);
  });

  it('24.3: a committed link leaving the synced directory is refused by name; nothing of the commit is applied', async () => {
    const outside = join(fx.root, 'outside.yaml');
    writeFileSync(outside, virtualCluster('stolen', 1));
    mkdirSync(join(fx.work, 'other'), { recursive: true });
    fx.write(fx.work, 'other/b.yaml', virtualCluster('b', 1));
    symlinkSync(outside, join(fx.work, 'clusters', 'abs.yaml'));
    symlinkSync('../other/b.yaml', join(fx.work, 'clusters', 'rel.yaml'));
    fx.commit(fx.work, 'links out');

    const r = await vcctlWithin(['sync', '--dir', join(fx.work, 'clusters'), '--name', 'links'], env);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /clusters\/abs\.yaml: is a symbolic link to .*outside\.yaml, outside the synced directory .*clusters; refusing/);
    assert.match(r.stderr, /clusters\/rel\.yaml: is a symbolic link to .*other\/b\.yaml, outside the synced directory/);
    for (const n of ['a', 'b', 'stolen']) assert.equal(await store.tryGet(VC(n)), undefined, n);
    const gs = await source('links');
    assert.equal(gs.status?.lastAppliedRevision, undefined);
    assert.equal(getCondition(gs.status?.conditions, 'Stalled')?.reason, 'ValidationFailed');
  });

  it('24.3: a link inside the directory is read as committed (clean); an ignored or re-pointed file makes the revision dirty', async () => {
    const dir = join(fx.work, 'clusters');
    // the target has a name the walk does not read itself, so the object is defined once
    fx.write(fx.work, 'clusters/real/c.txt', virtualCluster('c', 1));
    symlinkSync('real/c.txt', join(dir, 'link.yaml'));
    const commit = fx.commit(fx.work, 'a link inside');
    const ok = await vcctlWithin(['sync', '--dir', dir, '--name', 'inside'], env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((await source('inside')).status?.lastAppliedRevision, commit);
    assert.ok(await store.tryGet(VC('c')));

    // A file git ignores is read by the sync but is not in the commit: never the clean commit.
    fx.write(fx.work, '.gitignore', 'clusters/ignored.yaml\n');
    const commit2 = fx.commit(fx.work, 'ignore a file');
    fx.write(fx.work, 'clusters/ignored.yaml', virtualCluster('ignored', 1));
    const dirty = await vcctlWithin(['sync', '--dir', dir, '--name', 'inside'], env);
    assert.equal(dirty.code, 0, dirty.stderr);
    assert.match((await source('inside')).status?.lastAppliedRevision ?? '', new RegExp(`^${commit2}-dirty-[0-9a-f]{12}$`));
  });
});
