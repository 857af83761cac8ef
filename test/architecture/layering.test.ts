// Keeps the layering docs/architecture.md describes: the controller runtime (controllers/) is a
// library that imports no reconciler and no driver, and drivers/ import no reconciler; only the
// composition root (operator/) knows both. Every import of every .ts file is resolved against its
// file, static and dynamic ones alike.

import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = join(import.meta.dirname, '..', '..');

function tsFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

/** The repository paths a file imports (relative specifiers only: packages are not layers). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const specs = [
    ...text.matchAll(/\b(?:from|import)\s*['"]([^'"]+)['"]/g),
    ...text.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g),
  ].map((m) => m[1]!);
  return specs.filter((s) => s.startsWith('.')).map((s) => relative(root, resolve(root, dirname(file), s)));
}

/** `file imports path` for every import of a file under `dir` that lands under one of `banned`. */
function violations(dir: string, banned: readonly string[]): string[] {
  return tsFiles(dir).flatMap((f) =>
    importsOf(f).filter((p) => banned.some((b) => p === b || p.startsWith(`${b}/`))).map((p) => `${f} imports ${p}`),
  );
}

describe('layering', () => {
  it('finds the imports it checks: the composition root imports reconcilers and drivers', () => {
    const wired = importsOf('operator/registry.ts');
    assert.ok(wired.some((p) => p.startsWith('reconcilers/')), `operator/registry.ts imports: ${wired.join(', ')}`);
    assert.ok(wired.some((p) => p.startsWith('drivers/')), `operator/registry.ts imports: ${wired.join(', ')}`);
    assert.ok(tsFiles('controllers').length >= 10, 'controllers/ is read');
  });

  it('controllers/ (the runtime library) imports nothing from reconcilers/ or drivers/', () => {
    assert.deepEqual(violations('controllers', ['reconcilers', 'drivers']), []);
  });

  it('drivers/ import nothing from reconcilers/', () => {
    assert.deepEqual(violations('drivers', ['reconcilers']), []);
  });
});
