// Issue 23 over SSH: a bare repository served by a testbed node's real sshd (its host key pinned
// in spec.ssh.knownHosts, the testbed's login key as spec.ssh.identityFile), fetched by the gitops
// controller in a real ControllerManager on the embedded store. A source pinning another key is
// refused before authentication and applies nothing.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { getCondition } from '../../api/conditions.js';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import { silentLogger } from '../../controllers/log.js';
import { ControllerManager } from '../../controllers/manager.js';
import { testbedDown, testbedUp, type TestbedState } from '../../hack/lib/testbed.js';
import { gitOpsController } from '../../reconcilers/gitops/controller.js';
import type { GitSource } from '../../reconcilers/gitops/sync-status.js';
import { waitFor } from '../controllers/helpers.js';
import { git } from './git-fixture.js';
import { virtualCluster } from './sync-helpers.js';

const VC = (name: string) => ({ kind: 'VirtualCluster', namespace: 'default', name });

describe('gitops controller: GitSource over SSH from a testbed node (real sshd, real git)', function () {
  this.timeout(240_000);
  let root: string;
  let tb: TestbedState;
  let store: SqliteStore;
  let manager: ControllerManager;
  let bare: string;
  let clone: string;

  const commitAndPush = (files: Record<string, string>, message: string): string => {
    for (const [f, text] of Object.entries(files)) {
      execFileSync('mkdir', ['-p', join(clone, f, '..')]);
      execFileSync('tee', [join(clone, f)], { input: text, stdio: ['pipe', 'ignore', 'inherit'] });
    }
    git(clone, 'add', '-A');
    git(clone, '-c', 'user.name=t', '-c', 'user.email=t@example.invalid', 'commit', '--quiet', '-m', message);
    git(clone, 'push', '--quiet', 'origin', 'HEAD:refs/heads/main');
    return git(clone, 'rev-parse', 'HEAD').trim();
  };

  before(async () => {
    root = mkdtempSync('/tmp/tb-gitops-');
    tb = await testbedUp({ nodes: 1, dir: join(root, 'tb') });
    bare = join(tb.sanDir, 'cluster.git');
    execFileSync('git', ['init', '--quiet', '--bare', '--initial-branch=main', bare]);
    clone = join(root, 'clone');
    execFileSync('git', ['clone', '--quiet', bare, clone], { stdio: 'ignore' });
    store = new SqliteStore(join(root, 'store.db'), { pollIntervalMs: 10 });
    manager = new ControllerManager({
      store, identity: 'gitops-ssh', leaderElection: false, log: silentLogger(),
      specs: [gitOpsController({ cacheRoot: join(root, 'cache') })],
    });
    await manager.start();
  });
  after(async () => {
    await manager?.stop();
    await store?.close();
    if (root) await testbedDown(join(root, 'tb'));
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const node = () => tb.nodes[0]!;
  const url = () => `ssh://root@${node().address}:${node().port}${bare}`;
  const hostPattern = () => (node().port === 22 ? node().address : `[${node().address}]:${node().port}`);
  const create = (name: string, hostKey: string) => store.create<GitSource>({
    apiVersion: 'virtualinux.org/v1alpha1', kind: 'GitSource', metadata: { name, namespace: 'default' },
    spec: {
      url: url(), ref: 'main', path: 'clusters', interval: '2s', prune: true,
      ssh: { identityFile: tb.identityFile, knownHosts: `${hostPattern()} ${hostKey}` },
    },
  });
  const status = async (name: string) => (await store.get<GitSource>({ kind: 'GitSource', namespace: 'default', name })).status;

  it('a source pinning another host key is refused before authentication and applies nothing', async () => {
    commitAndPush({ 'clusters/a.yaml': virtualCluster('a', 1) }, 'a');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(root, 'other')]);
    const otherKey = readFileSync(join(root, 'other.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
    const logBefore = readFileSync(node().sshdLog, 'utf8').length;
    await create('wrong', otherKey);
    const s = await waitFor('FetchFailed', async () => {
      const st = await status('wrong');
      return getCondition(st?.conditions, 'Ready')?.reason === 'FetchFailed' ? st : undefined;
    }, 60_000);
    assert.match(s.lastError ?? '', /Host key verification failed[\s\S]*not the one pinned in spec\.ssh\.knownHosts; nothing was fetched/);
    assert.equal(s.lastAppliedRevision, undefined);
    assert.equal(s.fetchedRevision, undefined);
    assert.equal(await store.tryGet(VC('a')), undefined);
    const log = await waitFor('sshd to log the connection', () => {
      const l = readFileSync(node().sshdLog, 'utf8').slice(logBefore);
      return /Connection closed|Disconnected|Connection reset/.test(l) ? l : undefined;
    });
    assert.match(log, /kex: host key algorithm: ssh-ed25519/);
    assert.doesNotMatch(log, /userauth|publickey|Accepted|Postponed/i);
    await store.delete({ kind: 'GitSource', namespace: 'default', name: 'wrong' });
  });

  it('fetches with the pinned key, applies the branch, and a pushed commit within the interval', async () => {
    const head = git(clone, 'rev-parse', 'HEAD').trim();
    await create('right', node().hostKey);
    const s = await waitFor('applied over SSH', async () => {
      const st = await status('right');
      return st?.lastAppliedRevision === head ? st : undefined;
    }, 60_000);
    assert.equal(getCondition(s.conditions, 'Ready')?.status, 'True');
    assert.equal(s.fetchedRevision, head);
    assert.ok(await store.tryGet(VC('a')));

    const next = commitAndPush({ 'clusters/b.yaml': virtualCluster('b', 2) }, 'b');
    const pushed = Date.now();
    await waitFor('b', () => store.tryGet(VC('b')), 30_000, 20);
    console.log(`      commit in the store ${Date.now() - pushed} ms after the push over SSH (interval 2000 ms)`);
    await waitFor('status names the commit', async () => (await status('right'))?.lastAppliedRevision === next);
  });

  it('a key path with spaces, quotes, $(...) and % is used as it is, never through a shell or ssh token expansion', async () => {
    const odd = join(root, 'key dir', `it's $(touch ${join(root, 'pwned')}) %h`);
    execFileSync('mkdir', ['-p', join(odd, '..')]);
    execFileSync('cp', [tb.identityFile, odd]);
    await store.create<GitSource>({
      apiVersion: 'virtualinux.org/v1alpha1', kind: 'GitSource', metadata: { name: 'odd', namespace: 'default' },
      spec: { url: url(), path: 'clusters', interval: '2s', ssh: { identityFile: odd, knownHosts: `${hostPattern()} ${node().hostKey}` } },
    });
    const head = commitAndPush({ 'clusters/c.yaml': virtualCluster('c', 1) }, 'c');
    await waitFor('applied with the odd key path', async () => (await status('odd'))?.lastAppliedRevision === head, 60_000)
      .catch(async (err: Error) => { throw new Error(`${err.message}: ${(await status('odd'))?.lastError}`); });
    assert.throws(() => readFileSync(join(root, 'pwned')), /ENOENT/);
  });
});
