// Keeps issue 22 item 8 true: what the code says in one place is not written out again. Each rule
// names the one file that may hold the text and fails with every other file that does.

import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const SOURCES = ['api', 'cli', 'controllers', 'dashboard', 'drivers', 'operator', 'reconcilers', 'hack'];

function sources(): { file: string; text: string }[] {
  return SOURCES.flatMap((dir) => readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(root, join(e.parentPath, e.name))))
    .map((file) => ({ file, text: readFileSync(join(root, file), 'utf8') }));
}

const RULES: { what: string; pattern: RegExp; home: string }[] = [
  { what: 'the cluster label', pattern: /['"`]virtualinux\.org\/cluster\b/, home: 'api/labels.ts' },
  { what: 'the domain name <namespace>.<virtualnode>', pattern: /`\$\{[^}`]*namespace[^}`]*\}\.\$\{[^}`]*(?:\.name|virtualNode)[^}`]*\}`/, home: 'api/names.ts' },
  { what: 'an error base class setting its name', pattern: /this\.name = new\.target\.name/, home: 'api/errors.ts' },
  { what: 'a finalizer removed by hand', pattern: /finalizers[!?]*\)?\s*(\?\?\s*\[\]\))?\.filter\(/, home: 'api/finalizers.ts' },
];

describe('said once (issue 22 item 8)', () => {
  const files = sources();
  it('reads the sources', () => assert.ok(files.length > 100, `${files.length} files`));
  for (const r of RULES) {
    it(`${r.what}: only in ${r.home}`, () => {
      const holders = files.filter((f) => r.pattern.test(f.text)).map((f) => f.file);
      assert.ok(holders.includes(r.home), `the rule finds its home (${r.home}); found in: ${holders.join(', ')}`);
      assert.deepEqual(holders.filter((f) => f !== r.home), [], `${r.what} is written out again`);
    });
  }
});
