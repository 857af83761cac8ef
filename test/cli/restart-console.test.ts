// vcctl restart and console on the embedded store: what restart writes (the annotation the
// runtime acts on) and how both refuse what they cannot do. The VMs themselves: test/e2e/operations.e2e.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../api/store/open-store.js';
import type { Store } from '../../api/store/types.js';
import { API_VERSION, type VirtualCluster, type VirtualNode } from '../../api/types.js';
import { RESTART_ANNOTATION } from '../../reconcilers/runtime/plan.js';
import { vcctl } from './helpers.js';

describe('vcctl restart and console', () => {
  let dir: string;
  let url: string;
  let store: Store;
  const vnRef = (name: string) => ({ kind: 'VirtualNode', namespace: 'default', name });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-restart-'));
    url = `file:${join(dir, 'store.db')}`;
    store = await openStore(url);
    await store.create<VirtualCluster>({
      apiVersion: API_VERSION, kind: 'VirtualCluster', metadata: { name: 'halt', namespace: 'default' },
      spec: { nodes: 1, template: 'busybox', node: { vcpus: 1, memoryMiB: 256, diskGiB: 1, swapMiB: 0 }, placement: { strategy: 'Block', mode: 'Strict' }, state: 'Stopped' },
    });
    for (const [name, phase] of [['halt-0', 'Stopped'], ['run-0', 'Running']] as const) {
      const vn = await store.create<VirtualNode>({
        apiVersion: API_VERSION, kind: 'VirtualNode', metadata: { name, namespace: 'default', labels: { 'virtualinux.org/cluster': name.replace(/-0$/, '') } },
        spec: { cluster: name.replace(/-0$/, ''), index: 0, vcpus: 1, memoryMiB: 256, physicalNode: 'blade1' },
      });
      await store.updateStatus<VirtualNode>({ ...vn, status: { phase, host: 'blade1' } });
    }
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('restart refuses a VM or VC that does not run, writing nothing', async () => {
    const r = await vcctl(url, ['restart', 'vn/halt-0']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /virtualnode "halt-0" is not running \(phase Stopped\): nothing to restart/);
    assert.equal((await store.get<VirtualNode>(vnRef('halt-0'))).metadata.annotations?.[RESTART_ANNOTATION], undefined);
    const c = await vcctl(url, ['restart', 'vc/halt']);
    assert.match(c.stderr, /virtualcluster "halt" is Stopped, not Running/);
    assert.equal((await vcctl(url, ['restart', 'vn/nope'])).code, 1);
    assert.equal((await vcctl(url, ['restart', 'halt-0'])).code, 2, 'a bare name is ambiguous: vn/ or vc/');
  });

  it('restart stamps the annotation the runtime acts on, and waits for the VM to report in again (timing out here: no runtime)', async () => {
    const r = await vcctl(url, ['restart', 'vn/run-0', '--timeout=300ms']);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /virtualnode\/run-0 restarting/);
    assert.match(r.stderr, /restart and report in/);
    const stamp = (await store.get<VirtualNode>(vnRef('run-0'))).metadata.annotations?.[RESTART_ANNOTATION];
    assert.ok(stamp && !Number.isNaN(Date.parse(stamp)), `a timestamp: ${stamp}`);
  });

  it('console refuses a VM that does not run, and needs exactly one vn/NAME', async () => {
    const r = await vcctl(url, ['console', 'vn/halt-0']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /virtualnode "halt-0" is not running \(phase Stopped\)/);
    assert.equal((await vcctl(url, ['console'])).code, 2);
    assert.equal((await vcctl(url, ['console', 'vc/halt'])).code, 2);
  });
});
