// NfsServerDriver on a real testbed node (a network namespace with real sshd), through the SSH
// transport: a real nfs-ganesha started, reloaded and stopped inside the node. The host kernel has
// no NFS client, so what is checked is what ganesha serves (its listener on 2049 in the node's
// namespace and the export list it logs), not a mount.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testbedDown, testbedUp, type TestbedState } from '../../hack/lib/testbed.js';
import { SshTransport } from '../../drivers/transport/ssh-transport.js';
import { execOk, type Transport } from '../../drivers/transport/types.js';
import { NfsServerDriver } from '../../drivers/nfs/nfs-server.js';
import { exportIds } from '../../drivers/nfs/ganesha-config.js';

describe('NfsServerDriver on a testbed node', function () {
  this.timeout(120_000);
  let dir: string;
  let tb: TestbedState | undefined;
  let t: Transport;
  let driver: NfsServerDriver;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vl-nfs-'));
    tb = await testbedUp({ nodes: 1, dir });
    const n = tb.nodes[0]!;
    t = new SshTransport({ host: n.name, address: n.address, port: n.port, user: 'root', identityFile: tb.identityFile, hostKey: n.hostKey });
    driver = new NfsServerDriver(t, { runRoot: join(n.stateDir, 'run') });
    for (const d of ['a', 'b']) await mkdir(join(dir, 'shared', d), { recursive: true });
  });
  after(async () => {
    // Stop ganesha even when a test failed half-way: by the pid in its pid file, checked.
    if (driver) await driver.stopServer().catch(() => undefined);
    if (t) await t.close();
    if (tb) await testbedDown(dir);
    await rm(dir, { recursive: true, force: true });
  });

  const exp = (name: string, clients: string) => ({ pseudo: `/vc/default/${name}`, path: join(dir, 'shared', name), clients });
  const listeners = async () => execOk(t, ['ss', '-Hltnp', 'sport', '=', ':2049']);

  it('starts, reloads on a config change, does nothing when unchanged, and stops leaving no process', async () => {
    const a = exp('a', '10.200.0.0/24');
    const b = exp('b', '10.200.1.0/24');

    const first = await driver.apply([a]);
    assert.deepEqual(first.changed, ['nfs server started serving /vc/default/a']);
    const s1 = await driver.list();
    assert.ok(s1.pid !== undefined);
    assert.deepEqual(s1.exports, [{ ...a, id: exportIds([a]).get(a.pseudo)! }]);
    assert.match(await listeners(), new RegExp(`:2049 .*ganesha\\.nfsd",pid=${s1.pid}`), 'ganesha listens on 2049 in the node namespace');

    assert.deepEqual((await driver.apply([a])).changed, [], 'a second apply changes nothing');

    const second = await driver.apply([b, a]);
    assert.deepEqual(second.changed, ['nfs exports reloaded; added /vc/default/b']);
    const s2 = await driver.list();
    assert.equal(s2.pid, s1.pid, 'reloaded in place, not restarted');
    assert.deepEqual(s2.exports.map((e) => [e.pseudo, e.clients]).sort(), [[a.pseudo, a.clients], [b.pseudo, b.clients]]);
    const ids = exportIds([a, b]);
    assert.equal(s2.exports.find((e) => e.pseudo === a.pseudo)?.id, s1.exports[0]!.id, "a's export id is stable when b comes");
    assert.equal(s2.exports.find((e) => e.pseudo === b.pseudo)?.id, ids.get(b.pseudo));

    const third = await driver.apply([b]);
    assert.deepEqual(third.changed, ['nfs exports reloaded; removed /vc/default/a']);
    assert.deepEqual((await driver.list()).exports.map((e) => e.pseudo), [b.pseudo]);

    const last = await driver.apply([]);
    assert.deepEqual(last.changed, ['nfs server stopped (no export wanted)']);
    assert.deepEqual(await driver.list(), { pid: undefined, exports: [] });
    assert.equal((await listeners()).trim(), '', 'nothing listens on 2049 any more');
    // Gone, or ended and waiting for PID 1 of this machine to reap it (ganesha daemonized itself).
    const st = await t.exec(['sh', '-c', 'grep "^State:" "/proc/$1/status"', 'sh', String(s1.pid)]);
    assert.ok(st.code !== 0 || /^State:\s*Z/.test(st.stdout), `the process is gone: ${st.stdout}`);
    assert.deepEqual((await driver.apply([])).changed, []);
  });

  it('fails with the reason when an export directory is missing, and recovers once it exists', async () => {
    const c = exp('c', '10.200.2.0/24');
    await assert.rejects(driver.apply([c]), (e: Error) => {
      assert.match(e.message, /nfs-ganesha does not serve \d+ \/vc\/default\/c /);
      assert.match(e.message, /does each export directory exist/);
      return true;
    });
    await mkdir(c.path, { recursive: true });
    const ok = await driver.apply([c]);
    assert.deepEqual(ok.changed, ['nfs exports reloaded; added /vc/default/c']);
    assert.deepEqual((await driver.list()).exports.map((e) => e.pseudo), [c.pseudo]);
    assert.match(await readFile(driver.confPath, 'utf8'), /Pseudo = "\/vc\/default\/c"/);
    await driver.apply([]);
    assert.equal((await driver.list()).pid, undefined);
  });

  it('never signals a process that is not its ganesha (stale pid file)', async () => {
    await execOk(t, ['mkdir', '-p', driver.dir]);
    await t.writeFile(driver.pidPath, '1\n');
    assert.equal(await driver.runningPid(), undefined);
    assert.deepEqual((await driver.apply([])).changed, []);
  });
});
