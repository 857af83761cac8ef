// The GitOps end-to-end tests once more, unchanged, on a 3-member etcd cluster (hack/etcd-cluster:
// TLS, client certificates, etcd auth, one network namespace per member) instead of the embedded
// store: a real ControllerManager fetching real git (gitops-controller), and two real vc-manager
// processes whose leader is killed mid-sync (gitops-failover). They take their store from
// VL_E2E_STORE (store-site.ts) and run in a child mocha, so that their own hooks make and remove
// the cluster. Needs root.

import assert from 'node:assert/strict';
import { runChildMocha } from '../e2e/child-mocha.js';

const FILES = ['test/gitops/gitops-controller.test.ts', 'test/gitops/gitops-failover.test.ts'];

describe('GitOps end to end on a 3-member etcd cluster (gitops-controller and gitops-failover, VL_E2E_STORE=etcd-cluster)', function () {
  this.timeout(30 * 60_000);

  it('the GitOps tests pass on the etcd cluster', async () => {
    const { code, out, summary, failures } = await runChildMocha(FILES, { VL_E2E_STORE: 'etcd-cluster' });
    assert.ok(summary, `no summary line from the child mocha (exit ${code})`);
    assert.equal(summary.failed, 0, `${summary.failed} GitOps tests failed on the etcd cluster:\n${failures}`);
    assert.ok(summary.passed >= 7, `only ${summary.passed} GitOps tests ran`);
    const clusters = out.match(/store: a 3-member etcd cluster/g)?.length ?? 0;
    assert.equal(clusters, FILES.length, `each file runs on a cluster of its own (the child made ${clusters})`);
    assert.equal(code, 0);
  });
});
