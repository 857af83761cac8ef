// The defect as a user met it: two VCs without spec.network in one file, applied with vcctl while
// a vc-manager process runs (embedded store), then the manager restarted and a third VC applied.
// Every VC must hold a subnet of its own throughout.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { VirtualCluster } from '../../api/types.js';
import { vcctl } from '../cli/helpers.js';
import { httpGet, startManager, type ManagerProcess } from './processes.js';
import { tempSqliteStore, waitFor, type TempSqliteStore } from './helpers.js';

const manifest = (...names: string[]) => names.map((n) => `apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: ${n}, namespace: default}
spec:
  nodes: 1
  template: busybox
  node: {vcpus: 1, memoryMiB: 256, diskGiB: 1, swapMiB: 0}
  placement: {strategy: Block, mode: Lazy}
`).join('---\n');

describe('vc-manager process: VCs applied together get subnets of their own', function () {
  this.timeout(120_000);
  let tmp: TempSqliteStore;
  const procs: ManagerProcess[] = [];
  before(() => {
    tmp = tempSqliteStore();
  });
  after(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    await tmp.close();
  });

  const start = async (identity: string) => {
    const p = startManager(identity, ['--store', `file:${tmp.path}`, '--lease-ttl', '3', '--controllers', 'network/subnets']);
    procs.push(p);
    await waitFor(`${identity} leading`, async () => p.addr && (await httpGet(p.addr, '/readyz')).body.includes('leader'), 60_000);
    return p;
  };
  const apply = async (file: string, ...names: string[]) => {
    writeFileSync(file, manifest(...names));
    const r = await vcctl(`file:${tmp.path}`, ['apply', '-f', file]);
    assert.equal(r.code, 0, r.stderr);
  };
  const subnets = (names: string[]) => waitFor(`subnets of ${names.join(', ')}`, async () => {
    const vcs = (await tmp.store.list<VirtualCluster>('VirtualCluster')).items;
    const got = names.map((n) => vcs.find((v) => v.metadata.name === n)?.status?.subnet);
    return got.every(Boolean) ? (got as string[]) : undefined;
  }, 60_000);

  it('apply -f of two VCs, then a restart and a third VC: all different, none moved', async () => {
    const dir = dirname(tmp.path);
    const first = await start('subnets-a');
    await apply(join(dir, 'two.yaml'), 'left', 'right');
    const two = await subnets(['left', 'right']);
    assert.notEqual(two[0], two[1], `left and right both got ${two[0]}`);

    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
    await start('subnets-b');
    await apply(join(dir, 'third.yaml'), 'third');
    const three = await subnets(['left', 'right', 'third']);
    assert.deepEqual(three.slice(0, 2), two, 'the restart moved no subnet');
    assert.equal(new Set(three).size, 3, `three VCs, three subnets: ${three.join(', ')}`);
  });
});
