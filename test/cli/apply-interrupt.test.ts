// An interrupted apply, as a real process: `vcctl apply -f` of 5,000 VirtualClusters gets SIGINT
// (or SIGTERM) once its first batch is in the store. It finishes the batch in flight, writes no
// further one, prints a line for every object written (exactly those in the store: whole batches),
// says what was not written and exits 130 (143). Applying again finishes the job.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import { vcctl } from './helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const N = 5000;

function manifests(n: number): string {
  return Array.from({ length: n }, (_v, i) => `apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: vc-${i}}
spec: {nodes: 1, template: busybox}
`).join('---\n');
}

interface Exit { code: number | null; stdout: string; stderr: string }

/** Runs vcctl apply as a process and sends `signal` as soon as the store's revision moves. */
async function interruptedApply(file: string, db: string, signal: NodeJS.Signals): Promise<Exit> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli', 'vcctl.ts'), 'apply', '-f', file], {
    cwd: ROOT, env: { ...process.env, VCCTL_STORE: `file:${db}` }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const watcher = new SqliteStore(db);
  try {
    let done = false;
    void exited.then(() => (done = true));
    while (!done && (await watcher.revision()) === 0) await new Promise((r) => setTimeout(r, 2));
    child.kill(signal);
    return { code: await exited, stdout, stderr };
  } finally {
    await watcher.close();
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

describe('vcctl apply interrupted (a real process, 5,000 objects)', function () {
  this.timeout(180_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vl-apply-int-'));
    writeFileSync(join(dir, 'many.yaml'), manifests(N));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const [signal, exitCode] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${signal}: finishes the batch in flight, prints exactly what was written and what was not, exits ${exitCode}`, async () => {
      const db = join(dir, `${signal}.db`);
      const r = await interruptedApply(join(dir, 'many.yaml'), db, signal);
      assert.equal(r.code, exitCode, `exit code; stderr: ${r.stderr}`);
      const store = new SqliteStore(db);
      try {
        const stored = (await store.list('VirtualCluster')).items.map((o) => o.metadata.name).sort();
        assert.ok(stored.length > 0 && stored.length < N, `${stored.length} stored: the apply must stop part-way`);
        assert.equal(stored.length % 100, 0, 'whole batches of 100 only');
        const printed = r.stdout.trimEnd().split('\n');
        assert.ok(printed.every((l) => /^virtualcluster\/vc-\d+ created$/.test(l)), r.stdout.slice(0, 500));
        assert.deepEqual(printed.map((l) => l.slice('virtualcluster/'.length, -' created'.length)).sort(), stored,
          'one line for each object written, none for the others');
        const lines = r.stderr.trimEnd().split('\n');
        assert.equal(lines[0], `error: interrupted by ${signal}: ${stored.length} of ${N} objects written or unchanged (above), ${N - stored.length} not written:`);
        assert.match(lines[1], new RegExp(`^error:   virtualcluster/vc-${stored.length}, virtualcluster/vc-${stored.length + 1}, .*, and ${N - stored.length - 10} more$`));
        assert.equal(lines[2], 'error: apply the same files again to write the rest (what was written shows as unchanged)');
      } finally {
        await store.close();
      }
      // Applying again finishes the job: the written ones are unchanged, the rest created.
      const again = await vcctl(`file:${db}`, ['apply', '-f', join(dir, 'many.yaml')]);
      assert.equal(again.code, 0, again.stderr);
      const actions = again.stdout.trimEnd().split('\n').map((l) => l.split(' ')[1]);
      assert.equal(actions.length, N);
      const check = new SqliteStore(db);
      try {
        assert.equal((await check.list('VirtualCluster')).items.length, N);
      } finally {
        await check.close();
      }
      assert.ok(actions.includes('unchanged') && actions.includes('created'));
    });
  }
});
