// The test tiers of package.json (README "Tests"): test:unit, test:integration, test:e2e and
// test:full together are exactly the files `npm test` runs, none in two. Each tier's file list
// comes from mocha itself (--dry-run), so a pattern mocha does not expand (it once took
// 'test/{a/b,c/d}.test.ts' for no file at all, and 21 integration files ran as unit tests) fails here.
// npm test takes its files from test/mocharc.parallel.cjs, longest first (test/file-order.cjs):
// each file exactly once (mocha would run a file listed twice twice), a new file included.
// test:full-long holds the full-node files too long for npm test (README "Tests"), and only those.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '../..');
const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
const order = createRequire(import.meta.url)('../file-order.cjs') as {
  testFiles(): string[];
  orderFiles(files: string[], table: Record<string, number>): string[];
  guessSeconds(file: string): number;
};

/** The file of each test a package.json script's mocha command line runs, in order, as mocha's dry run reports them. */
const dryRuns = new Map<string, Promise<string[]>>();
function testsOf(script: string): Promise<string[]> {
  if (!dryRuns.has(script)) dryRuns.set(script, dryRun(script));
  return dryRuns.get(script)!;
}

function dryRun(script: string): Promise<string[]> {
  // npm test runs its files side by side (--parallel --jobs N): the selection is the same without
  const cmd = scripts[script]?.replace(/ --parallel --jobs \d+/, '');
  assert.ok(cmd?.startsWith('mocha '), `package.json script ${script} is a mocha command`);
  return new Promise((resolve, reject) => {
    // the script's own command line, through a shell as npm runs it
    execFile('sh', ['-c', `npx ${cmd} --dry-run --reporter json`], { cwd: root, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${script}: ${stderr || err.message}`));
      if (/Cannot find any files matching pattern/.test(stderr)) return reject(new Error(`${script}: ${stderr.trim()}`));
      const report = JSON.parse(stdout) as { tests: { file: string }[] };
      resolve(report.tests.map((t) => t.file.slice(root.length + 1)));
    });
  });
}

describe('test tiers (package.json)', function () {
  this.timeout(300_000);

  it('unit, integration, e2e and full are disjoint and together exactly what npm test runs', async () => {
    const tiers = ['test:unit', 'test:integration', 'test:e2e', 'test:full'];
    const [allTests, ...tierTests] = await Promise.all(['test', ...tiers].map(testsOf));
    const all = new Set(allTests);
    const sets = tierTests.map((t) => new Set(t));
    const seen = new Map<string, string>();
    sets.forEach((files, i) => {
      assert.ok(files.size > 0, `${tiers[i]} selects no file`);
      for (const f of files) {
        assert.equal(seen.get(f), undefined, `${f} is in ${seen.get(f)} and ${tiers[i]}`);
        seen.set(f, tiers[i]!);
      }
    });
    assert.deepEqual([...seen.keys()].sort(), [...all].sort());
    // no file twice in npm test: as many tests as the tiers together
    assert.equal(allTests!.length, tierTests.reduce((n, t) => n + t.length, 0), 'npm test runs some file twice');
    // the integration tier's named files really are in it
    assert.ok(sets[1]!.has('test/store/etcd-store.test.ts'), 'test/store/etcd-store.test.ts runs in test:integration');
  });

  it('full-long runs exactly the *.full-long.test.ts files, none of which npm test runs; every other test file npm test runs', async () => {
    const [allTests, longTests] = await Promise.all(['test', 'test:full-long'].map(testsOf));
    const long = new Set(longTests);
    const every = readdirSync(join(root, 'test'), { recursive: true }).map((p) => `test/${String(p)}`).filter((p) => p.endsWith('.test.ts'));
    assert.deepEqual([...long].sort(), every.filter((f) => f.endsWith('.full-long.test.ts')).sort());
    assert.ok(long.size > 0, 'test:full-long selects no file');
    assert.deepEqual([...new Set(allTests)].filter((f) => long.has(f)), [], 'npm test runs a full-long file');
    assert.deepEqual([...new Set([...allTests!, ...long])].sort(), every.sort(), 'a test file neither npm test nor test:full-long runs');
  });
});

describe('npm test file order (test/file-order.cjs)', function () {
  this.timeout(300_000);

  it('npm test hands out every test file once, longest first by test/durations.json', async () => {
    const table = JSON.parse(readFileSync(join(root, 'test/durations.json'), 'utf8')) as Record<string, number>;
    const files = order.testFiles();
    assert.ok(files.includes('test/architecture/test-tiers.test.ts') && files.includes('test/store/etcd-store.test.ts'));
    assert.deepEqual(order.orderFiles(files, table).slice().sort(), files, 'each file once');
    // the order mocha runs them in under npm test's configuration
    const ran = [...new Set(await testsOf('test'))];
    const secs = (f: string) => table[f] ?? order.guessSeconds(f);
    for (let i = 1; i < ran.length; i++) assert.ok(secs(ran[i - 1]!) >= secs(ran[i]!), `${ran[i - 1]} (${secs(ran[i - 1]!)} s) before ${ran[i]} (${secs(ran[i]!)} s)`);
  });

  it('a file the table does not know is still run, guessed from its tier; a gone file is ignored', () => {
    const files = ['test/a/unit.test.ts', 'test/b/new.full.test.ts', 'test/c/new.e2e.test.ts', 'test/d/known.test.ts'];
    const table = { 'test/d/known.test.ts': 400, 'test/gone.test.ts': 9999 };
    assert.deepEqual(order.orderFiles(files, table), ['test/b/new.full.test.ts', 'test/d/known.test.ts', 'test/c/new.e2e.test.ts', 'test/a/unit.test.ts']);
  });
});
