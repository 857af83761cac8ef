// The test tiers of package.json (README "Tests"): test:unit, test:integration, test:e2e and
// test:full together are exactly the files `npm test` runs, none in two. Each tier's file list
// comes from mocha itself (--dry-run), so a pattern mocha does not expand (it once took
// 'test/{a/b,c/d}.test.ts' for no file at all, and 21 integration files ran as unit tests) fails here.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '../..');
const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

/** The files a package.json script's mocha command line selects, as mocha's dry run reports them. */
function filesOf(script: string): Promise<Set<string>> {
  // npm test runs its files side by side (--parallel --jobs N): the selection is the same without
  const cmd = scripts[script]?.replace(/ --parallel --jobs \d+/, '');
  assert.ok(cmd?.startsWith('mocha '), `package.json script ${script} is a mocha command`);
  return new Promise((resolve, reject) => {
    // the script's own command line, through a shell as npm runs it
    execFile('sh', ['-c', `npx ${cmd} --dry-run --reporter json`], { cwd: root, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${script}: ${stderr || err.message}`));
      if (/Cannot find any files matching pattern/.test(stderr)) return reject(new Error(`${script}: ${stderr.trim()}`));
      const report = JSON.parse(stdout) as { tests: { file: string }[] };
      resolve(new Set(report.tests.map((t) => t.file.slice(root.length + 1))));
    });
  });
}

describe('test tiers (package.json)', function () {
  this.timeout(300_000);

  it('unit, integration, e2e and full are disjoint and together exactly what npm test runs', async () => {
    const tiers = ['test:unit', 'test:integration', 'test:e2e', 'test:full'];
    const [all, ...sets] = await Promise.all(['test', ...tiers].map(filesOf));
    const seen = new Map<string, string>();
    sets.forEach((files, i) => {
      assert.ok(files.size > 0, `${tiers[i]} selects no file`);
      for (const f of files) {
        assert.equal(seen.get(f), undefined, `${f} is in ${seen.get(f)} and ${tiers[i]}`);
        seen.set(f, tiers[i]!);
      }
    });
    assert.deepEqual([...seen.keys()].sort(), [...all!].sort());
    // the integration tier's named files really are in it
    assert.ok(sets[1]!.has('test/store/etcd-store.test.ts'), 'test/store/etcd-store.test.ts runs in test:integration');
  });
});
