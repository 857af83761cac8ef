import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  findWorkTreeRoot, hasUncommittedChanges, pullFastForward, readHeadCommit,
} from '../../reconcilers/gitops/git-work-tree.js';
import { GitFixture, git } from './git-fixture.js';

describe('gitops git work tree (real git)', () => {
  let fx: GitFixture;
  let plain: string;
  beforeEach(() => {
    fx = new GitFixture();
    plain = mkdtempSync(join(tmpdir(), 'vc-gitops-plain-'));
  });
  afterEach(() => {
    fx.cleanup();
    rmSync(plain, { recursive: true, force: true });
  });

  it('finds the work tree of a subdirectory and not of a plain directory', async () => {
    fx.write(fx.work, 'clusters/a.yaml', 'x: 1\n');
    assert.equal(await findWorkTreeRoot(join(fx.work, 'clusters')), realpathSync(fx.work));
    assert.equal(await findWorkTreeRoot(plain), undefined);
    assert.equal(await readHeadCommit(plain), undefined);
  });

  it('reads HEAD and sees uncommitted changes under the directory only', async () => {
    assert.equal(await readHeadCommit(fx.work), fx.head(fx.work));
    fx.write(fx.work, 'clusters/a.yaml', 'x: 1\n');
    fx.write(fx.work, 'other/b.yaml', 'y: 1\n');
    fx.commit(fx.work, 'add');
    assert.equal(await hasUncommittedChanges(join(fx.work, 'clusters')), false);
    fx.write(fx.work, 'other/b.yaml', 'y: 2\n');
    assert.equal(await hasUncommittedChanges(join(fx.work, 'clusters')), false);
    fx.write(fx.work, 'clusters/new.yaml', 'z: 1\n');
    assert.equal(await hasUncommittedChanges(join(fx.work, 'clusters')), true);
  });

  it('pulls a commit pushed to the bare remote, fast-forward only', async () => {
    const before = fx.head(fx.work);
    const pushed = fx.pushUpstream({ 'a.yaml': 'a: 1\n' }, 'upstream change');
    const r = await pullFastForward(fx.work);
    assert.deepEqual(r, { before, after: pushed });
    assert.equal(fx.head(fx.work), pushed);
  });

  it('refuses a diverged work tree and leaves HEAD where it was', async () => {
    fx.pushUpstream({ 'a.yaml': 'a: 1\n' }, 'upstream change');
    fx.write(fx.work, 'b.yaml', 'b: 1\n');
    const local = fx.commit(fx.work, 'local change');
    await assert.rejects(pullFastForward(fx.work), /pull --ff-only[\s\S]*diverged/);
    assert.equal(fx.head(fx.work), local);
    assert.equal(git(fx.work, 'status', '--porcelain').trim(), '');
  });
});
