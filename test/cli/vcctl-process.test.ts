// vcctl as a real process (node --import tsx cli/vcctl.ts): stdin input, exit codes, errors on
// stderr without stack traces, and the global flags before the command name.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Proc { code: number | null; stdout: string; stderr: string }

function vcctlProcess(args: string[], env: NodeJS.ProcessEnv, stdin = ''): Promise<Proc> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/vcctl.ts', ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe('vcctl as a process', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vl-cliproc-'));
    env = { ...process.env, VCCTL_STORE: undefined, XDG_DATA_HOME: dir };
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('applies from stdin to --store given before the command, then lists with -o name', async () => {
    const store = `file:${join(dir, 'a.db')}`;
    const a = await vcctlProcess(['--store', store, 'apply', '-f', '-'], env, readFileSync('manifests/physical-cluster.yaml', 'utf8'));
    assert.deepEqual([a.code, a.stderr], [0, '']);
    assert.equal(a.stdout.split('\n')[0], 'physicalnode/blade1 created');
    const g = await vcctlProcess(['get', 'pn', '-o', 'name', `--store=${store}`], env);
    assert.deepEqual([g.code, g.stdout], [0, 'physicalnode/blade1\nphysicalnode/blade2\nphysicalnode/blade3\nphysicalnode/blade4\n']);
  });

  it('uses the default embedded store under $XDG_DATA_HOME, and VCCTL_STORE over it', async () => {
    const a = await vcctlProcess(['apply', '-f', 'manifests/ostemplate-busybox.yaml'], env);
    assert.deepEqual([a.code, a.stdout], [0, 'ostemplate/busybox created\n']);
    assert.ok(readFileSync(join(dir, 'virtualinux', 'store.db')).length > 0);
    const other = await vcctlProcess(['get', 'ost', '-o', 'name'], { ...env, VCCTL_STORE: `file:${join(dir, 'b.db')}` });
    assert.deepEqual([other.code, other.stdout], [0, '']);
  });

  it('prints input errors on stderr without a stack trace and exits 1', async () => {
    const bad = 'apiVersion: virtualinux.org/v1alpha1\nkind: VirtualCluster\nmetadata: {name: x}\nspec: {nodes: 2, template: t, speed: 9}\n';
    const r = await vcctlProcess(['apply', '-f', '-', '--store', `file:${join(dir, 'c.db')}`], env, bad);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'error: <stdin>: document 1 (line 4): spec.speed: unknown field (known fields: nodes, template, node, network, sharedStorage, placement, state, firstBoot, storageDriver, hypervisor, highAvailability)\n');
  });

  it('version and help', async () => {
    const v = await vcctlProcess(['version'], env);
    assert.deepEqual([v.code, v.stdout], [0, `vcctl version 0.1.0 (node ${process.version})\n`]);
    const h = await vcctlProcess(['help'], env);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /\n {2}apply +Create or update objects from manifests \(three-way merge\)\n/);
  });
});
