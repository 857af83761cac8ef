// vcctl commands in-process against the real embedded store (SQLite in a temporary file).

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import type { VirtualCluster } from '../../api/types.js';
import { vcctl } from './helpers.js';

const VC_REF = { kind: 'VirtualCluster', namespace: 'default', name: 'stripes' };

describe('vcctl (in-process, embedded store)', () => {
  let dir: string;
  let url: string;
  let store: SqliteStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vl-cli-'));
    url = `file:${join(dir, 'store.db')}`;
    store = new SqliteStore(join(dir, 'store.db'));
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const run = (...args: string[]) => vcctl(url, args);

  it('apply prints created, unchanged, configured; dry runs say so and write nothing', async () => {
    const r1 = await run('apply', '-f', 'manifests');
    assert.equal(r1.stderr, '');
    assert.equal(r1.code, 0);
    assert.equal(r1.stdout, [
      'ostemplate/busybox created', 'physicalnode/blade1 created', 'physicalnode/blade2 created',
      'physicalnode/blade3 created', 'physicalnode/blade4 created', 'virtualcluster/stripes created', '',
    ].join('\n'));
    const r2 = await run('apply', '-f', 'manifests/stripes.yaml');
    assert.equal(r2.stdout, 'virtualcluster/stripes unchanged\n');
    const changed = join(dir, 'stripes.yaml');
    writeFileSync(changed, readFileSync('manifests/stripes.yaml', 'utf8').replace('nodes: 4', 'nodes: 6'));
    const rev = await store.revision();
    assert.equal((await run('apply', '-f', changed, '--dry-run=client')).stdout, 'virtualcluster/stripes configured (dry run)\n');
    assert.equal((await run('apply', '-f', changed, '--dry-run=server')).stdout, 'virtualcluster/stripes configured (server dry run)\n');
    assert.equal(await store.revision(), rev);
    assert.equal((await run('apply', '-f', changed)).stdout, 'virtualcluster/stripes configured\n');
    assert.equal((await store.get<VirtualCluster>(VC_REF)).spec?.nodes, 6);
  });

  it('an invalid document among valid ones: exact error, exit 1, nothing written', async () => {
    const bad = join(dir, 'mixed.yaml');
    writeFileSync(bad, `${readFileSync('manifests/ostemplate-busybox.yaml', 'utf8')}---
apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: bad}
spec:
  nodes: 2
  template: busybox
  placement: {strategy: Diagonal}
---
${readFileSync('manifests/stripes.yaml', 'utf8')}`);
    const rev = await store.revision();
    const r = await run('apply', '-f', bad);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `error: ${bad}: document 2 (line 23): spec.placement.strategy: must be one of Block, Cyclic\n`);
    assert.equal(await store.revision(), rev, 'the store is unchanged');
    assert.deepEqual((await store.list('OSTemplate')).items, []);
    assert.deepEqual((await store.list('VirtualCluster')).items, []);
  });

  it('get: tables per kind, -o json of one object and of several (List), -o name, not found', async () => {
    await run('apply', '-f', 'manifests');
    const vc = await store.get<VirtualCluster>(VC_REF);
    await store.updateStatus({ ...vc, status: { phase: 'Running', nodes: [{ name: 'stripes-0', phase: 'Running' }] } });

    const table = await run('get', 'vc');
    assert.match(table.stdout, /^NAME {6}NODES {3}STATE {5}PHASE {5}READY {5}AGE\nstripes {3}1\/4 {5}Running {3}Running {3}Unknown {3}\d+s\n$/);
    const wide = await run('get', 'virtualclusters', '-o', 'wide');
    assert.match(wide.stdout.split('\n')[0], /STRATEGY {3}MODE {5}SUBNET {9}TEMPLATE$/);
    assert.match(wide.stdout.split('\n')[1], /Block {6}Strict {3}10\.10\.1\.0\/24 {3}busybox$/);

    const one = JSON.parse((await run('get', 'vc', 'stripes', '-o', 'json')).stdout);
    assert.equal(one.kind, 'VirtualCluster');
    assert.equal(one.status.phase, 'Running');
    const list = JSON.parse((await run('get', 'pn', '-o', 'json')).stdout);
    assert.equal(list.apiVersion, 'v1');
    assert.equal(list.kind, 'List');
    assert.deepEqual(list.items.map((o: { metadata: { name: string } }) => o.metadata.name), ['blade1', 'blade2', 'blade3', 'blade4']);

    assert.equal((await run('get', 'vc,ost', '-o', 'name')).stdout, 'virtualcluster/stripes\nostemplate/busybox\n');
    assert.equal((await run('get', 'pn', '-l', 'rack=r2', '-o', 'name')).stdout, '');
    const multi = await run('get', 'vc,pn');
    assert.match(multi.stdout, /^NAME +NODES.*\nvirtualcluster\/stripes .*\n\nNAME +ADDRESS +READY +CORES +MEMORY +ALLOCATED +AGE\nphysicalnode\/blade1 +198\.18\.0\.11 +Unknown +4 +8192Mi +<none> +\d+s\n/);

    const missing = await run('get', 'vc', 'nope');
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'error: virtualcluster "nope" not found in namespace "default"\n');
    const yaml = await run('get', 'vc/stripes', '-o', 'yaml');
    assert.match(yaml.stdout, /^apiVersion: virtualinux.org\/v1alpha1\nkind: VirtualCluster\n/);
    const empty = await run('get', 'vc', '-n', 'other');
    assert.equal(empty.stderr, 'No resources found in other namespace.\n');
  });

  it('diff exits 0 when the same, 1 with a unified diff when different, 2 on error', async () => {
    await run('apply', '-f', 'manifests/stripes.yaml');
    const same = await run('diff', '-f', 'manifests/stripes.yaml');
    assert.deepEqual([same.code, same.stdout], [0, '']);
    const changed = join(dir, 'stripes.yaml');
    writeFileSync(changed, readFileSync('manifests/stripes.yaml', 'utf8').replace('nodes: 4', 'nodes: 8'));
    const d = await run('diff', '-f', changed);
    assert.equal(d.code, 1);
    assert.match(d.stdout, /^diff -u -N live\/virtualcluster\.default\.stripes merged\/virtualcluster\.default\.stripes\n--- live\/virtualcluster\.default\.stripes\n\+\+\+ merged\/virtualcluster\.default\.stripes\n@@ -\d+,7 \+\d+,7 @@\n/);
    assert.match(d.stdout, /\n-  nodes: 4\n\+  nodes: 8\n/);
    const bad = await run('diff', '-f', join(dir, 'missing.yaml'));
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr, `error: ${join(dir, 'missing.yaml')}: cannot read: no such file or directory\n`);
  });

  it('describe shows spec, conditions and the events of the object', async () => {
    await run('apply', '-f', 'manifests/stripes.yaml');
    const vc = await store.get<VirtualCluster>(VC_REF);
    const now = new Date().toISOString();
    await store.updateStatus({ ...vc, status: { phase: 'Pending', conditions: [{ type: 'Placed', status: 'False', reason: 'Unschedulable', message: 'blade1: no memory', lastTransitionTime: now, observedGeneration: 1 }] } });
    await store.create({
      apiVersion: 'virtualinux.org/v1alpha1', kind: 'Event', metadata: { name: 'stripes.1', namespace: 'default' },
      spec: { involvedObject: { kind: 'VirtualCluster', name: 'stripes', namespace: 'default' }, type: 'Warning', reason: 'Unschedulable', message: 'no node fits stripes-3', count: 2, firstTimestamp: now, lastTimestamp: now, source: 'placement' },
    });
    const r = await run('describe', 'vc', 'stripes');
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Name: {9}stripes\nNamespace: {4}default\nKind: {9}VirtualCluster\nLabels: {7}app=stripes\n/);
    assert.match(r.stdout, /\nSpec:\n {2}nodes: 4\n {2}template: busybox\n/);
    assert.match(r.stdout, /\nConditions:\n +TYPE +STATUS +REASON +AGE +MESSAGE\n +Placed +False +Unschedulable +\d+s +blade1: no memory\n/);
    assert.match(r.stdout, /\nEvents:\n +TYPE +REASON +AGE +FROM +MESSAGE\n +Warning +Unschedulable +\d+s \(x2\) +placement +no node fits stripes-3\n$/);
    const ev = await run('events');
    assert.match(ev.stdout, /^LAST SEEN +TYPE +REASON +OBJECT +MESSAGE\n\d+s +Warning +Unschedulable +virtualcluster\/stripes +no node fits stripes-3\n$/);
  });

  it('delete by name and with -f, --wait, and the not-found error', async () => {
    await run('apply', '-f', 'manifests');
    assert.equal((await run('delete', 'vc', 'stripes', '--wait')).stdout, 'virtualcluster/stripes deleted\n');
    assert.equal(await store.tryGet(VC_REF), undefined);
    const d = await run('delete', '-f', 'manifests/physical-cluster.yaml', '--cascade=foreground');
    assert.equal(d.stdout, 'physicalnode/blade1 deleted\nphysicalnode/blade2 deleted\nphysicalnode/blade3 deleted\nphysicalnode/blade4 deleted\n');
    const missing = await run('delete', 'pn/blade1');
    assert.deepEqual([missing.code, missing.stderr], [1, 'error: physicalnode "blade1" not found\n']);
    const badCascade = await run('delete', 'pn/blade1', '--cascade=sideways');
    assert.deepEqual([badCascade.code, badCascade.stderr], [2, 'error: --cascade must be one of background, foreground, orphan, got "sideways"\nSee "vcctl delete --help".\n']);
  });

  it('wait returns when the condition becomes true, and times out otherwise', async () => {
    await run('apply', '-f', 'manifests/stripes.yaml');
    const waiting = run('wait', 'vc/stripes', '--for=condition=Ready', '--timeout=20s');
    setTimeout(() => {
      void store.get<VirtualCluster>(VC_REF).then((vc) => store.updateStatus({
        ...vc, status: { conditions: [{ type: 'Ready', status: 'True', reason: 'Running', message: '', lastTransitionTime: new Date().toISOString() }] },
      }));
    }, 300);
    const r = await waiting;
    assert.deepEqual([r.code, r.stdout], [0, 'virtualcluster/stripes condition met\n']);
    const jp = await run('wait', 'vc/stripes', '--for=jsonpath={.status.conditions[?(@.type=="Ready")].status}=True', '--timeout=1s');
    assert.equal(jp.code, 0);
    const t = await run('wait', 'vc/stripes', '--for=jsonpath={.spec.nodes}=9', '--timeout=300ms');
    assert.deepEqual([t.code, t.stderr], [1, 'error: timed out waiting for {.spec.nodes}=9 on virtualcluster/stripes\n']);
  });

  it('wait does not take a condition written for an older generation: it waits for one about the current spec', async () => {
    await run('apply', '-f', 'manifests/stripes.yaml');
    const setReady = async (observedGeneration: number) => {
      const vc = await store.get<VirtualCluster>(VC_REF);
      await store.updateStatus({
        ...vc, status: { conditions: [{ type: 'Ready', status: 'True', reason: 'NodesRunning', message: '', lastTransitionTime: new Date().toISOString(), observedGeneration }] },
      });
    };
    await setReady((await store.get<VirtualCluster>(VC_REF)).metadata.generation!);
    const vc = await store.get<VirtualCluster>(VC_REF);
    // the user changes the spec: Ready=True is now about the previous generation
    const updated = await store.update<VirtualCluster>({ ...vc, spec: { ...vc.spec!, state: 'Stopped' } });
    assert.equal(updated.metadata.generation, vc.metadata.generation! + 1);
    const stale = await run('wait', 'vc/stripes', '--for=condition=Ready', '--timeout=300ms');
    assert.deepEqual([stale.code, stale.stderr], [1, 'error: timed out waiting for condition Ready=True on virtualcluster/stripes\n']);
    const waiting = run('wait', 'vc/stripes', '--for=condition=Ready', '--timeout=20s');
    setTimeout(() => void setReady(updated.metadata.generation!), 300);
    assert.deepEqual([(await waiting).code, (await waiting).stdout], [0, 'virtualcluster/stripes condition met\n']);
  });

  it('get -w prints the changes after the list', async () => {
    await run('apply', '-f', 'manifests/stripes.yaml');
    const watching = run('get', 'vc', '-w', '-o', 'name', '--timeout=1500ms');
    setTimeout(() => void store.create({ apiVersion: 'virtualinux.org/v1alpha1', kind: 'VirtualCluster', metadata: { name: 'later', namespace: 'default' }, spec: { nodes: 1, template: 'busybox' } }), 300);
    const r = await watching;
    assert.equal(r.stdout, 'virtualcluster/stripes\nvirtualcluster/later\n');
  });

  it('apply --prune -l deletes what an earlier apply made and the manifests dropped; -A lists every namespace', async () => {
    const two = join(dir, 'two.yaml');
    const vcDoc = (name: string, ns: string) => `apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: ${name}, namespace: ${ns}, labels: {set: demo}}
spec: {nodes: 1, template: busybox}
`;
    writeFileSync(two, `${vcDoc('a', 'default')}---\n${vcDoc('b', 'default')}---\n${vcDoc('c', 'team')}`);
    assert.equal((await run('apply', '-f', two)).code, 0);
    const all = await run('get', 'vc', '-A');
    assert.match(all.stdout, /^NAMESPACE +NAME +NODES +STATE +PHASE +READY +AGE\ndefault +a +0\/1 .*\ndefault +b +0\/1 .*\nteam +c +0\/1 .*\n$/);
    const one = join(dir, 'one.yaml');
    writeFileSync(one, vcDoc('a', 'default'));
    const noSel = await run('apply', '-f', one, '--prune');
    assert.deepEqual([noSel.code, noSel.stderr], [2, 'error: --prune needs -l SELECTOR (which objects may be pruned)\nSee "vcctl apply --help".\n']);
    const dry = await run('apply', '-f', one, '--prune', '-l', 'set=demo', '--dry-run=client');
    assert.equal(dry.stdout, 'virtualcluster/a unchanged (dry run)\nvirtualcluster/b pruned (dry run)\n');
    const r = await run('apply', '-f', one, '--prune', '-l', 'set=demo');
    assert.equal(r.stdout, 'virtualcluster/a unchanged\nvirtualcluster/b pruned\n');
    assert.equal((await run('get', 'vc', '-A', '-o', 'name')).stdout, 'virtualcluster/a\nvirtualcluster/c\n', 'the other namespace is not pruned');
  });

  it('usage errors exit 2: unknown command, unknown flag, unknown kind', async () => {
    const u = await run('frobnicate');
    assert.deepEqual([u.code, u.stderr], [2, 'error: unknown command "frobnicate" for "vcctl"\nRun "vcctl help" for the list of commands.\n']);
    const f = await run('get', 'vc', '--colour');
    assert.deepEqual([f.code, f.stderr], [2, 'error: unknown flag "--colour"\nSee "vcctl get --help".\n']);
    const k = await run('get', 'pods');
    assert.equal(k.code, 2);
    assert.match(k.stderr, /^error: the server doesn't have a resource type "pods"; known: physicalnodes \(pn\), /);
    const e = await run('explain', 'vc.spec.nodes');
    assert.match(e.stdout, /FIELD: {6}nodes <integer>\n\nDESCRIPTION:\n {4}Number of virtual nodes, named <vc>-0 \.\. <vc>-\(n-1\)\.\n\nRANGE: 1 \.\. 1024\n/);
  });
});
