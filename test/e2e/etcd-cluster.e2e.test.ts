// The runtime and network end-to-end tests once more, unchanged, on a 3-member etcd cluster
// (hack/etcd-cluster: TLS, client certificates, one network namespace per member) instead of the
// embedded store: the cluster harness takes its store from VL_E2E_STORE. They run in a child
// mocha so that their own before/after hooks make and remove the cluster.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FILES = ['test/e2e/runtime.e2e.test.ts', 'test/e2e/network.e2e.test.ts'];

describe('end to end on a 3-member etcd cluster (runtime and network e2e, VL_E2E_STORE=etcd-cluster)', function () {
  this.timeout(60 * 60_000);

  it('the runtime and network end-to-end tests pass on the etcd cluster', async () => {
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
    assert.equal(summary[2], '0', `${summary[2]} end-to-end tests failed on the etcd cluster`);
    assert.ok(Number(summary[1]) > 0, 'no end-to-end test ran');
    assert.equal(code, 0);
  });
});
