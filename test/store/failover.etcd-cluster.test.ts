// The etcd store on a real 3-member cluster (hack/etcd-cluster: one network namespace per member,
// TLS, client certificates, etcd auth): failover when a member hangs, one honoured deadline and a
// message a user can act on when no member answers or no quorum is left, never a hang.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { main as vcctlMain } from '../../cli/vcctl.js';
import type { Store } from '../../api/store/types.js';
import {
  etcdClusterDown, etcdClusterUp, memberRoles, pauseMember, startMember, stopMember, waitHealthy, readEtcdCluster,
  type EtcdClusterState,
} from '../../hack/lib/etcd-cluster.js';
import { openTestStore, virtualCluster } from '../controllers/helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

async function vcctl(args: string[], url: string): Promise<{ code: number; out: string; err: string; ms: number }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (d: Buffer) => (o += d.toString()));
  err.on('data', (d: Buffer) => (e += d.toString()));
  const t0 = Date.now();
  const code = await vcctlMain(args, { stdout: out, stderr: err, stdin: Readable.from(['']), env: { ...process.env, VCCTL_STORE: url } });
  return { code, out: o, err: e, ms: Date.now() - t0 };
}

/** The message of item 9 of issue 24: one deadline, the store named, nothing of gRPC's internals. */
function assertUnavailable(text: string, s: EtcdClusterState): void {
  const hosts = s.members.map((m) => `${m.address}:2379`).join(',');
  assert.ok(text.includes(`store unavailable at etcd://${hosts}: no answer within 10 s`), text);
  assert.doesNotMatch(text, /Resolution note|Deadline exceeded|UNAVAILABLE|DEADLINE_EXCEEDED|SSL routines/);
  assert.equal(text.trim().split('\n').length, 1, `one line: ${text}`);
}

describe('etcd store on a 3-member cluster: failover and deadlines', function () {
  this.timeout(180_000);
  let dir: string;
  let s: EtcdClusterState;
  let url: string;
  let store: Store | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-ec-store-'));
    s = await etcdClusterUp({ dir, members: 3 });
    url = readFileSync(s.storeUrlFile, 'utf8').trim();
    store = await openTestStore(url);
  });
  after(async () => {
    await store?.close();
    if (dir) await etcdClusterDown(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  it('up: one leader, two followers; the store URL names files, never a password; a client without a certificate is refused', async () => {
    const roles = await memberRoles(s);
    assert.deepEqual(roles.map((r) => r.role).sort(), ['follower', 'follower', 'leader']);
    assert.match(url, /^etcd:\/\/198\.19\.\d+\.11:2379,198\.19\.\d+\.12:2379,198\.19\.\d+\.13:2379\?cacert=\/.*&cert=\/.*&key=\//);
    assert.doesNotMatch(url, /password/);
    const password = readFileSync(s.passwordFile, 'utf8').trim();
    assert.ok(password.length >= 16 && !url.includes(password));
    const noCert = await vcctl(['get', 'vc', '-A'], url.replace(/&cert=[^&]*&key=[^&]*/, ''));
    assert.equal(noCert.code, 1);
    assert.match(noCert.err, /TLS: .*certificate/);
    assert.ok(noCert.ms < 9000, `a TLS refusal is not retried until the deadline (${noCert.ms} ms)`);
  });

  it('one member hung (SIGSTOP): every read and write still succeeds through the others, each well within the deadline', async () => {
    const victim = s.members[0]!.name;
    await pauseMember(dir, victim, true);
    try {
      let slowest = 0;
      for (let i = 0; i < 15; i++) {
        const t0 = Date.now();
        await store!.create(virtualCluster(`hung-${i}`, 1, 'failover'));
        assert.equal((await store!.list('VirtualCluster', { namespace: 'failover' })).items.length, i + 1);
        slowest = Math.max(slowest, Date.now() - t0);
      }
      // A fresh client starts on the first endpoint, the hung one, and moves on within its share.
      const fresh = await openTestStore(url);
      const t0 = Date.now();
      assert.equal((await fresh.list('VirtualCluster', { namespace: 'failover' })).items.length, 15);
      const freshMs = Date.now() - t0;
      await fresh.close();
      console.log(`      slowest create+list ${slowest} ms; a new client past the hung member in ${freshMs} ms`);
      assert.ok(slowest < 10_000 && freshMs < 10_000);
    } finally {
      await pauseMember(dir, victim, false);
    }
  });

  it('every member hung: vcctl fails after one deadline (10 s, not 31) with "store unavailable at etcd://...: no answer within 10 s"', async () => {
    for (const m of s.members) await pauseMember(dir, m.name, true);
    try {
      const r = await vcctl(['get', 'vc', '-A'], url);
      console.log(`      vcctl exited ${r.code} after ${r.ms} ms: ${r.err.trim()}`);
      assert.equal(r.code, 1);
      assertUnavailable(r.err, s);
      assert.ok(r.ms >= 9_500 && r.ms < 12_000, `took ${r.ms} ms`);
      // The vcctl program too: it exits after its answer (a connection still open to a hung member
      // kept it alive before), and prints nothing but the error (no Node or gRPC warnings).
      const t0 = Date.now();
      const p = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/vcctl.ts'), 'get', 'vc', '-A'], {
        cwd: ROOT, env: { ...process.env, VCCTL_STORE: url }, stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((res) => {
        const t = setTimeout(() => { p.kill('SIGKILL'); res(null); }, 60_000);
        p.on('exit', (c) => { clearTimeout(t); res(c); });
      });
      console.log(`      vcctl (a process) exited ${code} after ${Date.now() - t0} ms`);
      assert.equal(code, 1, `vcctl hung or failed otherwise: ${stderr}`);
      assertUnavailable(stderr, s);
    } finally {
      for (const m of s.members) await pauseMember(dir, m.name, false);
    }
    await waitHealthy(await readEtcdCluster(dir), 30_000);
  });

  it('no quorum (two members down): vcctl and vc-manager fail within the timeout, saying so, never hang', async () => {
    const [a, b] = [s.members[1]!.name, s.members[2]!.name];
    await stopMember(dir, a);
    await stopMember(dir, b);
    try {
      const r = await vcctl(['get', 'vc', '-A'], url);
      console.log(`      vcctl exited ${r.code} after ${r.ms} ms: ${r.err.trim()}`);
      assert.equal(r.code, 1);
      assertUnavailable(r.err, s);
      assert.match(r.err, /no leader/);
      assert.ok(r.ms >= 9_500 && r.ms < 12_000, `took ${r.ms} ms`);

      const t0 = Date.now();
      const mgr = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'operator/vc-manager.ts'), '--store', url,
        '--identity', 'noquorum', '--metrics-addr', '127.0.0.1:0'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      mgr.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((res) => {
        const t = setTimeout(() => { mgr.kill('SIGKILL'); res(null); }, 40_000);
        mgr.on('exit', (c) => { clearTimeout(t); res(c); });
      });
      const ms = Date.now() - t0;
      console.log(`      vc-manager exited ${code} after ${ms} ms`);
      assert.notEqual(code, null, `vc-manager hung: ${stderr}`);
      assert.notEqual(code, 0);
      assert.match(stderr, /store unavailable at etcd:\/\/.*: no answer within 10 s/);
      assert.doesNotMatch(stderr, /Resolution note|DEADLINE_EXCEEDED/);
    } finally {
      await startMember(dir, a);
      await startMember(dir, b);
    }
    await waitHealthy(await readEtcdCluster(dir), 30_000);
    assert.equal((await store!.list('VirtualCluster', { namespace: 'failover' })).items.length, 15, 'the data survived');
  });
});
