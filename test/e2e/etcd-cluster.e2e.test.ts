// The runtime and network end-to-end tests once more, unchanged, on a 3-member etcd cluster
// (hack/etcd-cluster: TLS, client certificates, one network namespace per member) instead of the
// embedded store: the cluster harness takes its store from VL_E2E_STORE. They run in a child
// mocha so that their own before/after hooks make and remove the cluster.

import assert from 'node:assert/strict';
import { runChildMocha } from './child-mocha.js';

const FILES = ['test/e2e/runtime.e2e.test.ts', 'test/e2e/network.e2e.test.ts'];

describe('end to end on a 3-member etcd cluster (runtime and network e2e, VL_E2E_STORE=etcd-cluster)', function () {
  this.timeout(60 * 60_000);

  it('the runtime and network end-to-end tests pass on the etcd cluster', async () => {
    const { code, summary, failures } = await runChildMocha(FILES, { VL_E2E_STORE: 'etcd-cluster' });
    assert.ok(summary, `no summary line from the child mocha (exit ${code})`);
    assert.equal(summary.failed, 0, `${summary.failed} end-to-end tests failed on the etcd cluster:\n${failures}`);
    assert.ok(summary.passed > 0, 'no end-to-end test ran');
    assert.equal(code, 0);
  });
});
