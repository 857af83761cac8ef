// The GitOps end-to-end tests once more, unchanged, on a 3-member etcd cluster (hack/etcd-cluster:
// TLS, client certificates, etcd auth, one network namespace per member) instead of the embedded
// store: a real ControllerManager fetching real git (gitops-controller), and two real vc-manager
// processes whose leader is killed mid-sync (gitops-failover). They take their store from
// VL_E2E_STORE (store-site.ts) and run in a child mocha, so that their own hooks make and remove
// the cluster. Needs root.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FILES = ['test/gitops/gitops-controller.test.ts', 'test/gitops/gitops-failover.test.ts'];

describe('GitOps end to end on a 3-member etcd cluster (gitops-controller and gitops-failover, VL_E2E_STORE=etcd-cluster)', function () {
  this.timeout(30 * 60_000);

  it('the GitOps tests pass on the etcd cluster', async () => {
    const child = spawn(process.execPath, [join(ROOT, 'node_modules/mocha/bin/mocha.js'), ...FILES], {
      cwd: ROOT, env: { ...process.env, VL_E2E_STORE: 'etcd-cluster' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const keep = (d: Buffer) => {
      out += d.toString();
      process.stdout.write(d.toString().replace(/^/gm, '      | '));
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    const summary = /(\d+) passed, (\d+) failed, (\d+) skipped/.exec(out);
    assert.ok(summary, `no summary line from the child mocha (exit ${code})`);
    assert.equal(summary[2], '0', `${summary[2]} GitOps tests failed on the etcd cluster`);
    assert.ok(Number(summary[1]) >= 7, `only ${summary[1]} GitOps tests ran`);
    const clusters = out.match(/store: a 3-member etcd cluster/g)?.length ?? 0;
    assert.equal(clusters, FILES.length, `each file runs on a cluster of its own (the child made ${clusters})`);
    assert.equal(code, 0);
  });
});
