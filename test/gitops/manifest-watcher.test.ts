import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManifestWatcher, isUnderDotDir } from '../../reconcilers/gitops/manifest-watcher.js';

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('gitops ManifestWatcher (chokidar, real files)', () => {
  let dir: string;
  let watcher: ManifestWatcher | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vc-gitops-watch-'));
    mkdirSync(join(dir, '.git'));
    mkdirSync(join(dir, 'sub'));
  });
  afterEach(async () => {
    await watcher?.close();
    watcher = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports manifest changes in subdirectories and ignores .git and other files', async () => {
    const seen: string[] = [];
    watcher = await ManifestWatcher.start(dir, { onChange: (_e, p) => seen.push(p) });
    writeFileSync(join(dir, '.git', 'index.yaml'), 'x');
    writeFileSync(join(dir, 'notes.txt'), 'x');
    writeFileSync(join(dir, 'sub', 'a.yaml'), 'a: 1\n');
    await until(() => seen.some((p) => p.endsWith('a.yaml')), 'a.yaml');
    // A later manifest change is a barrier: the ignored writes above had their chance to appear.
    writeFileSync(join(dir, 'b.yml'), 'b: 1\n');
    await until(() => seen.some((p) => p.endsWith('b.yml')), 'b.yml');
    assert.deepEqual(seen.filter((p) => p.includes('.git') || p.endsWith('.txt')), []);
  });

  it('classifies dot-directories', () => {
    assert.equal(isUnderDotDir('/r', '/r/.git'), true);
    assert.equal(isUnderDotDir('/r', '/r/.git/objects/ab'), true);
    assert.equal(isUnderDotDir('/r', '/r/a/.cache/x.yaml'), true);
    assert.equal(isUnderDotDir('/r', '/r/a/x.yaml'), false);
    assert.equal(isUnderDotDir('/r', '/r/.hidden.yaml'), false);
    assert.equal(isUnderDotDir('/r', '/r'), false);
  });
});
