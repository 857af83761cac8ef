// The vcctl bundle (hack/build-cli.ts, run by npm run build), built into a directory of its own
// under dist/, as a process against a real etcd: the same output and stored objects as the sources
// (node --import tsx cli/vcctl.ts), the same with V8's code cache, a damaged one and none
// (cli/bundle/launcher.ts), and the same all-or-nothing refusal of an invalid document.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEtcd, type EtcdHarness } from '../../hack/lib/etcd-harness.js';

const API = 'virtualinux.org/v1alpha1';

describe('vcctl bundle', function () {
  this.timeout(600_000);

  describe('the bundle as a process', () => {
    let etcd: EtcdHarness;
    let out: string;
    let work: string;
    before(async () => {
      mkdirSync('dist', { recursive: true });
      out = mkdtempSync(join('dist', '.bundle-test-'));
      work = mkdtempSync(join(tmpdir(), 'vl-bundle-'));
      const b = spawnSync(process.execPath, ['--import', 'tsx', 'hack/build-cli.ts', '--outdir', out], { encoding: 'utf8' });
      assert.equal(b.status, 0, b.stderr);
      etcd = await startEtcd();
    });
    after(async () => {
      rmSync(out, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
      await etcd?.stop();
    });

    const run = (cli: string[], args: string[]) => {
      const r = spawnSync(process.execPath, [...cli, ...args], { encoding: 'utf8', env: { ...process.env, VCCTL_STORE: etcd.url } });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    const vcs = (ns: string, n: number, bad?: number) => Array.from({ length: n }, (_v, i) => [
      `apiVersion: ${API}`, 'kind: VirtualCluster', `metadata: {name: vc-${i}, namespace: ${ns}}`,
      `spec: {nodes: ${i === bad ? 'many' : 1 + (i % 3)}, template: busybox, node: {vcpus: 1, memoryMiB: 256, diskGiB: 4}}`,
    ].join('\n')).join('\n---\n');

    it('applies like the sources: same lines, same stored objects, then unchanged', () => {
      for (const [ns, cli] of [['bundled', [join(out, 'vcctl.js')]], ['sources', ['--import', 'tsx', 'cli/vcctl.ts']]] as const) {
        const file = join(work, `${ns}.yaml`);
        writeFileSync(file, vcs(ns, 150));
        const first = run([...cli], ['apply', '-f', file]);
        assert.deepEqual([first.code, first.stderr], [0, '']);
        assert.deepEqual(first.stdout.trimEnd().split('\n'), Array.from({ length: 150 }, (_v, i) => `virtualcluster/vc-${i} created`));
        const again = run([...cli], ['apply', '-f', file]);
        assert.deepEqual(again.stdout.trimEnd().split('\n'), Array.from({ length: 150 }, (_v, i) => `virtualcluster/vc-${i} unchanged`));
      }
      const strip = (ns: string) => {
        const r = run([join(out, 'vcctl.js')], ['get', 'vc', '-n', ns, '-o', 'json']);
        assert.equal(r.code, 0, r.stderr);
        return (JSON.parse(r.stdout) as { items: { metadata: Record<string, unknown>; spec: unknown }[] }).items.map((o) => ({
          name: o.metadata.name, spec: o.spec,
          applied: (o.metadata.annotations as Record<string, string>)['virtualinux.org/last-applied-configuration'],
        }));
      };
      const bundled = strip('bundled');
      assert.equal(bundled.length, 150);
      assert.deepEqual(bundled.map((o) => ({ ...o, applied: o.applied.replace('"bundled"', 'NS') })),
        strip('sources').map((o) => ({ ...o, applied: o.applied.replace('"sources"', 'NS') })));
    });

    it('saves the code V8 compiled for a command, and runs alike with it, with a damaged one and without one', () => {
      const cache = join(out, 'v8-cache');
      const file = join(work, 'cached.yaml');
      writeFileSync(file, vcs('cached', 20));
      const lines = (action: string) => Array.from({ length: 20 }, (_v, i) => `virtualcluster/vc-${i} ${action}`);
      const saved = () => readdirSync(cache).filter((f) => f.endsWith('-apply.bin'));
      const a = run([join(out, 'vcctl.js')], ['apply', '-f', file]); // earlier tests ran apply: the cache is in use
      assert.deepEqual([a.code, a.stdout.trimEnd().split('\n'), a.stderr], [0, lines('created'), '']);
      assert.equal(saved().length, 1, `one cache file for apply in ${readdirSync(cache).join(', ')}`);
      const bin = join(cache, saved()[0]);
      assert.ok(statSync(bin).size > 100_000, `${statSync(bin).size} bytes`);
      // A damaged cache is refused by V8: the run compiles as without one and saves a good one.
      const good = readFileSync(bin);
      writeFileSync(bin, Buffer.from(good.map((b, i) => (i > 64 && i % 7 === 0 ? b ^ 0xff : b))));
      const b = run([join(out, 'vcctl.js')], ['apply', '-f', file]);
      assert.deepEqual([b.code, b.stdout.trimEnd().split('\n'), b.stderr], [0, lines('unchanged'), '']);
      assert.ok(statSync(bin).size > 100_000);
      assert.notDeepEqual(readFileSync(bin), good.map((x, i) => (i > 64 && i % 7 === 0 ? x ^ 0xff : x)), 'the damaged cache was replaced');
      // No cache directory at all (removed, or never writable): the same again.
      rmSync(cache, { recursive: true, force: true });
      const c = run([join(out, 'vcctl.js')], ['apply', '-f', file]);
      assert.deepEqual([c.code, c.stdout.trimEnd().split('\n'), c.stderr], [0, lines('unchanged'), '']);
      assert.equal(saved().length, 1);
    });

    it('refuses a file with one invalid document as the sources do, and writes nothing', () => {
      const file = join(work, 'bad.yaml');
      writeFileSync(file, vcs('refused', 120, 77));
      const b = run([join(out, 'vcctl.js')], ['apply', '-f', file]);
      const s = run(['--import', 'tsx', 'cli/vcctl.ts'], ['apply', '-f', file]);
      assert.equal(b.code, 1);
      assert.deepEqual([b.code, b.stdout, b.stderr], [s.code, s.stdout, s.stderr]);
      assert.match(b.stderr, /bad\.yaml: document 78 \(line \d+\): spec\.nodes: must be an integer, not a string/);
      const g = run([join(out, 'vcctl.js')], ['get', 'vc', '-n', 'refused', '-o', 'name']);
      assert.deepEqual([g.code, g.stdout], [0, '']);
    });
  });
});
