// Manifest input: every kind of bad input is refused with the exact message a user sees, and
// good input comes back validated and defaulted.

import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { formatIssue, loadManifests, ManifestError, type Manifest } from '../../api/input/index.js';

const VC = `apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata:
  name: stripes
spec:
  nodes: 4
  template: busybox
`;

describe('api/input: loading manifests', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vl-input-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function file(name: string, text: string): string {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  }

  async function errorsOf(paths: string[], opts = {}): Promise<string[]> {
    try {
      await loadManifests(paths, opts);
    } catch (err) {
      assert.ok(err instanceof ManifestError, `expected ManifestError, got ${String(err)}`);
      return err.issues.map(formatIssue);
    }
    assert.fail('loadManifests accepted bad input');
  }

  it('applies the schema defaults and fills the namespace', async () => {
    const [m] = await loadManifests([file('ok.yaml', VC)]);
    assert.equal(m.object.metadata.namespace, 'default');
    assert.deepEqual(m.defaulted.spec, {
      nodes: 4, template: 'busybox',
      node: { vcpus: 1, memoryMiB: 256, diskGiB: 4, swapMiB: 0 },
      sharedStorage: { sizeGiB: 1, filesystem: 'nfs' },
      placement: { strategy: 'Block', mode: 'Strict' },
      state: 'Running',
      highAvailability: 'restart',
    });
    assert.deepEqual(m.object.spec, { nodes: 4, template: 'busybox' }, 'the object as written stays undefaulted');
    assert.deepEqual(m.source, { file: join(dir, 'ok.yaml'), document: 1, line: 1 });
  });

  it('rejects a bad enum value with file, document, line and JSON path', async () => {
    const p = file('enum.yaml', `${VC}  placement:\n    strategy: Blocky\n`);
    assert.deepEqual(await errorsOf([p]), [`${p}: document 1 (line 9): spec.placement.strategy: must be one of Block, Cyclic`]);
  });

  it('rejects an unknown field, naming the known ones', async () => {
    const p = file('unknown.yaml', `${VC}  placement:\n    strategy: Block\n    stratgy: Cyclic\n`);
    assert.deepEqual(await errorsOf([p]), [
      `${p}: document 1 (line 10): spec.placement.stratgy: unknown field (known fields: strategy, mode)`,
    ]);
  });

  it('rejects an unknown top-level field and an unknown metadata field', async () => {
    const p = file('unknown2.yaml', VC.replace('metadata:\n', 'metadata:\n  nmae: x\n') + 'extra: 1\n');
    assert.deepEqual(await errorsOf([p]), [
      `${p}: document 1 (line 4): metadata.nmae: unknown field (known fields: name, namespace, labels, annotations, uid, resourceVersion, generation, creationTimestamp, deletionTimestamp, finalizers, ownerReferences)`,
      `${p}: document 1 (line 9): extra: unknown field (known fields: apiVersion, kind, metadata, spec, status)`,
    ]);
  });

  it('rejects a wrong type', async () => {
    const p = file('type.yaml', VC.replace('nodes: 4', 'nodes: four'));
    assert.deepEqual(await errorsOf([p]), [`${p}: document 1 (line 6): spec.nodes: must be an integer, not a string`]);
  });

  it('rejects a value out of range and a missing required field', async () => {
    const p = file('range.yaml', VC.replace('nodes: 4', 'nodes: 0').replace('  template: busybox\n', ''));
    assert.deepEqual(await errorsOf([p]), [
      `${p}: document 1 (line 5): spec.template: is required`,
      `${p}: document 1 (line 6): spec.nodes: must be >= 1`,
    ]);
  });

  it('rejects names that are not DNS-1123 labels, and too long ones', async () => {
    const p = file('name.yaml', VC.replace('name: stripes', 'name: Stripes_1'));
    assert.deepEqual(await errorsOf([p]), [
      `${p}: document 1 (line 4): metadata.name: "Stripes_1" is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)`,
    ]);
    const long = 'a'.repeat(64);
    const q = file('long.yaml', VC.replace('name: stripes', `name: ${long}`));
    assert.deepEqual(await errorsOf([q]), [`${q}: document 1 (line 4): metadata.name: must be at most 63 characters`]);
  });

  it('rejects a namespace on a cluster-scoped kind and a namespace other than -n', async () => {
    const pn = file('pn-ns.yaml', `apiVersion: virtualinux.org/v1alpha1
kind: OSTemplate
metadata: {name: busybox, namespace: default}
spec: {image: {path: /san/b.qcow2}}
`);
    assert.deepEqual(await errorsOf([pn]), [`${pn}: document 1 (line 3): metadata.namespace: OSTemplate is cluster-scoped: remove metadata.namespace`]);
    const vc = file('vc-ns.yaml', VC.replace('name: stripes', 'name: stripes\n  namespace: other'));
    assert.deepEqual(await errorsOf([vc], { namespace: 'team', enforceNamespace: true }), [
      `${vc}: document 1 (line 5): metadata.namespace: "other" does not match the namespace "team" given with -n`,
    ]);
  });

  it('rejects an unknown kind and a wrong apiVersion', async () => {
    const p = file('kind.yaml', `apiVersion: virtualinux.org/v1alpha1\nkind: Pod\nmetadata: {name: x}\n---\n${VC.replace('v1alpha1', 'v1')}`);
    assert.deepEqual(await errorsOf([p]), [
      `${p}: document 1 (line 2): kind: unknown kind "Pod"; known kinds: PhysicalNode, OSTemplate, VirtualCluster, VirtualNode, Volume, Migration, Event, GitSource`,
      `${p}: document 2 (line 5): apiVersion: must be virtualinux.org/v1alpha1`,
    ]);
  });

  it('rejects duplicate keys', async () => {
    const p = file('dup.yaml', VC.replace('  template: busybox\n', '  template: busybox\n  nodes: 5\n'));
    assert.deepEqual(await errorsOf([p]), [`${p}: document 1 (line 8): duplicate key "nodes": each key may appear once per map`]);
  });

  it('refuses an alias bomb (billion laughs) without expanding it', async () => {
    let bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
    let prev = 'a';
    for (const n of 'bcdefghi') {
      bomb += `${n}: &${n} [${Array(9).fill(`*${prev}`).join(',')}]\n`;
      prev = n;
    }
    const p = file('bomb.yaml', bomb);
    const started = Date.now();
    assert.deepEqual(await errorsOf([p]), [
      `${p}: document 1 (line 1): too many alias references (more than 100): refusing a possible "billion laughs" document`,
    ]);
    assert.ok(Date.now() - started < 5000, 'the bomb must not be expanded');
  });

  it('reports an alias without its anchor as an unresolved alias with its line, not as an alias bomb', async () => {
    const p = file('alias.yaml', `${VC}  node:\n    vcpus: *cpus\n`);
    assert.deepEqual(await errorsOf([p]), [
      `${p}: document 1 (line 9): unresolved alias "*cpus": no anchor "&cpus" is defined before it in this document`,
    ]);
    // An anchor defined after its alias is as unresolved; anchors before it work.
    const late = file('late.yaml', `${VC.replace('nodes: 4', 'nodes: *n')}  x: &n 4\n`);
    assert.deepEqual(await errorsOf([late]), [
      `${late}: document 1 (line 6): unresolved alias "*n": no anchor "&n" is defined before it in this document`,
    ]);
    const [m] = await loadManifests([file('anchored.yaml', VC.replace('nodes: 4', 'nodes: &n 4\n  node: {vcpus: *n}'))]);
    assert.equal((m.object.spec as { node: { vcpus: number } }).node.vcpus, 4);
  });

  it('rejects an unknown YAML tag (!custom) and non-plain ones (!!binary, !!set) with their lines', async () => {
    const p = file('tags.yaml', `${VC.replace('template: busybox', 'template: !custom busybox')}---\n${VC.replace('stripes', 'b')}metadata2: !!binary aGVsbG8=\n`);
    assert.deepEqual(await errorsOf([p]), [
      `${p}: document 1 (line 7): unsupported YAML tag "!custom": manifests hold plain strings, numbers, booleans, null, maps and lists`,
      `${p}: document 2 (line 16): unsupported YAML tag "!!binary": manifests hold plain strings, numbers, booleans, null, maps and lists`,
    ]);
    const set = file('set.yaml', `${VC}  labels: !!set {a}\n`);
    assert.deepEqual(await errorsOf([set]), [
      `${set}: document 1 (line 8): unsupported YAML tag "!!set": manifests hold plain strings, numbers, booleans, null, maps and lists`,
    ]);
    const [m] = await loadManifests([file('plain-tags.yaml', VC.replace('template: busybox', 'template: !!str busybox'))]);
    assert.equal((m.object.spec as { template: string }).template, 'busybox');
  });

  it('reports an oversized annotation set against the annotations, not against last-applied-configuration', async () => {
    const big = 'x'.repeat(100_000);
    const p = file('annotated.yaml', VC.replace('  name: stripes\n', `  name: stripes\n  annotations:\n    a.example/one: ${big}\n    a.example/two: ${big}\n`));
    assert.deepEqual(await errorsOf([p]), [
      `${p}: document 1 (line 5): metadata.annotations: the annotations hold 200026 bytes together, at most 131072 (apply keeps a copy of the manifest in virtualinux.org/last-applied-configuration); keep large data elsewhere`,
    ]);
    // Under the cap they load, and apply can record them.
    const [m] = await loadManifests([file('annotated-ok.yaml', VC.replace('  name: stripes\n', `  name: stripes\n  annotations:\n    a.example/one: ${big}\n`))]);
    assert.equal(m.object.metadata.annotations?.['a.example/one'], big);
  });

  it('refuses an oversized file before parsing it, and oversized stdin', async () => {
    const text = `${VC}# ${'x'.repeat(5000)}\n`;
    const p = file('big.yaml', text);
    assert.deepEqual(await errorsOf([p], { maxFileBytes: 4096 }), [
      `${p}: file too large: ${Buffer.byteLength(text)} bytes, the limit is 4096 bytes; split it into several files`,
    ]);
    const huge = file('huge.yaml', 'x'.repeat(4 * 1024 * 1024 + 1));
    assert.deepEqual(await errorsOf([huge]), [
      `${huge}: file too large: 4194305 bytes, the limit is 4194304 bytes; split it into several files`,
    ]);
    const stdin = Readable.from([Buffer.from('a'.repeat(3000)), Buffer.from('b'.repeat(3000))]);
    assert.deepEqual(await errorsOf(['-'], { stdin, maxFileBytes: 4096 }), [
      '<stdin>: file too large: more than that, the limit is 4096 bytes; split it into several files',
    ]);
  });

  it('reports invalid YAML syntax with its line', async () => {
    const p = file('syntax.yaml', 'kind: [a, b\nspec: {}\n');
    const errs = await errorsOf([p]);
    assert.equal(errs.length >= 1, true);
    assert.match(errs[0], new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: document 1 \\(line \\d\\): invalid YAML: `));
  });

  it('lists every problem of every document, and skips empty documents', async () => {
    const p = file('multi.yaml', `---\n---\n${VC}---\n${VC.replace('stripes', 'b').replace('nodes: 4', 'nodes: -1')}---\n# only a comment\n`);
    assert.deepEqual(await errorsOf([p]), [`${p}: document 3 (line 16): spec.nodes: must be >= 1`]);
    const ok = file('multi-ok.yaml', `---\n---\n${VC}---\n${VC.replace('stripes', 'b')}---\n`);
    const ms = await loadManifests([ok]);
    assert.deepEqual(ms.map((m) => [m.object.metadata.name, m.source.document, m.source.line]), [['stripes', 2, 3], ['b', 3, 11]]);
  });

  it('rejects the same object twice', async () => {
    const p = file('twice.yaml', `${VC}---\n${VC}`);
    assert.deepEqual(await errorsOf([p]), [
      `${p}: document 2 (line 9): metadata.name: VirtualCluster default/stripes is also defined in ${p} document 1`,
    ]);
  });

  it('reads stdin for "-", and a directory in sorted order, recursing only with -R', async () => {
    const d = join(dir, 'tree');
    mkdirSync(join(d, 'sub'), { recursive: true });
    writeFileSync(join(d, 'b.yaml'), VC.replace('stripes', 'b'));
    writeFileSync(join(d, 'a.yml'), VC.replace('stripes', 'a'));
    writeFileSync(join(d, 'notes.txt'), 'not a manifest');
    writeFileSync(join(d, 'sub', 'c.json'), JSON.stringify({ apiVersion: 'virtualinux.org/v1alpha1', kind: 'VirtualCluster', metadata: { name: 'c' }, spec: { nodes: 1, template: 't' } }));
    const names = (ms: Manifest[]) => ms.map((m) => m.object.metadata.name);
    assert.deepEqual(names(await loadManifests([d])), ['a', 'b']);
    assert.deepEqual(names(await loadManifests([d], { recursive: true })), ['a', 'b', 'c']);
    const fromStdin = await loadManifests(['-'], { stdin: Readable.from([VC]) });
    assert.deepEqual(fromStdin[0].source, { file: '<stdin>', document: 1, line: 1 });
  });

  it('accepts a List (as get -o yaml prints) and the example manifests', async () => {
    const list = file('list.yaml', `apiVersion: v1\nkind: List\nitems:\n- ${VC.trimEnd().split('\n').join('\n  ')}\n`);
    assert.deepEqual((await loadManifests([list])).map((m) => m.object.metadata.name), ['stripes']);
    const ms = await loadManifests(['manifests']);
    assert.deepEqual(ms.map((m) => `${m.object.kind}/${m.object.metadata.name}`), [
      'OSTemplate/busybox', 'PhysicalNode/blade1', 'PhysicalNode/blade2', 'PhysicalNode/blade3', 'PhysicalNode/blade4',
      'VirtualCluster/stripes',
    ]);
  });

  it('reports a missing file', async () => {
    const p = join(dir, 'nope.yaml');
    assert.deepEqual(await errorsOf([p]), [`${p}: cannot read: no such file or directory`]);
  });
});
