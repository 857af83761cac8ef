// SshTransport against real OpenSSH servers in testbed network namespaces.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SshTransport, fingerprint, parseHostKey } from '../../drivers/transport/ssh-transport.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { TransportCache, transportFor } from '../../drivers/transport/transport-for.js';
import {
  HostKeyMismatchError,
  TransportError,
  TransportTimeoutError,
  execOk,
} from '../../drivers/transport/types.js';
import type { PhysicalNode } from '../../api/types.js';
import { nodeExec, testbedDown, testbedUp, type TestbedState, type TestbedNode } from '../../hack/lib/testbed.js';
import { ECHO_ARGV, HOSTILE_ARGS, parseNulList } from './argv-cases.js';
import { alive, maxOverlap, overlapScript, until } from './helpers.js';

async function pidsIn(node: TestbedNode): Promise<number[]> {
  const r = await new LocalTransport().exec(['ip', 'netns', 'pids', node.netns]);
  return r.stdout.split(/\s+/).filter(Boolean).map(Number);
}

function ppid(pid: number): number {
  const m = /^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1]);
}

describe('SshTransport (real sshd in testbed namespaces)', function () {
  this.timeout(120_000);
  let dir: string;
  let tb: TestbedState;
  let node: TestbedNode;
  let t: SshTransport;

  const sshFor = (n: TestbedNode, extra: Partial<ConstructorParameters<typeof SshTransport>[0]> = {}) =>
    new SshTransport({ host: n.name, address: n.address, port: n.port, user: 'root', identityFile: tb.identityFile, hostKey: n.hostKey, ...extra });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vl-ssh-'));
    tb = await testbedUp({ nodes: 2, dir });
    node = tb.nodes[0]!;
    t = sshFor(node, { maxConcurrent: 4 });
  });
  after(async () => {
    await t?.close();
    await testbedDown(dir);
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a host presenting another key before authentication, naming both fingerprints', async () => {
    const logBefore = (await readFile(node.sshdLog, 'utf8')).length;
    const wrongKey = tb.nodes[1]!.hostKey; // blade2's key, pinned for blade1's address
    const bad = sshFor(node, { hostKey: wrongKey });
    const err = await bad.exec(['touch', join(tb.sanDir, 'must-not-exist')]).catch((e: unknown) => e);
    await bad.close();
    assert.ok(err instanceof HostKeyMismatchError, `expected HostKeyMismatchError, got ${String(err)}`);
    assert.equal(err.expected, fingerprint(parseHostKey(wrongKey).blob));
    assert.equal(err.offered, fingerprint(parseHostKey(node.hostKey).blob));
    assert.match(err.message, /expected SHA256:\S+, offered SHA256:\S+/);
    // sshd saw the connection and the key exchange, and never an authentication request
    let log = '';
    await until('sshd to log the closed connection', async () => {
      log = (await readFile(node.sshdLog, 'utf8')).slice(logBefore);
      return /Connection closed|Disconnected|Connection reset/.test(log);
    });
    assert.match(log, new RegExp(`Connection from ${tb.hostAddress.replace(/\./g, '\\.')}`));
    assert.match(log, /kex: host key algorithm: ssh-ed25519/);
    assert.doesNotMatch(log, /userauth|publickey|Accepted|Postponed/i);
    const r = await execOk(t, ['ls', tb.sanDir]);
    assert.doesNotMatch(r, /must-not-exist/);
  });

  it('refuses a host that has no key of the pinned type', async () => {
    const keyFile = join(dir, 'ecdsa');
    await execOk(new LocalTransport(), ['ssh-keygen', '-q', '-t', 'ecdsa', '-N', '', '-f', keyFile]);
    const ecdsa = (await readFile(keyFile + '.pub', 'utf8')).trim();
    const bad = sshFor(node, { hostKey: ecdsa });
    const err = await bad.exec(['true']).catch((e: unknown) => e);
    await bad.close();
    assert.ok(err instanceof HostKeyMismatchError, String(err));
    assert.equal(err.expected, fingerprint(parseHostKey(ecdsa).blob));
    assert.match(err.offered, /no ecdsa-sha2-nistp256 key/);
  });

  it('passes every hostile argument through the remote shell unchanged', async () => {
    const r = await t.exec([...ECHO_ARGV, ...HOSTILE_ARGS]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(parseNulList(r.stdout), HOSTILE_ARGS);
    const shown = await t.exec(['test', '-e', '/tmp/vl-should-not-exist']);
    assert.equal(shown.code, 1);
  });

  it('passes env, cwd, stdin and exit codes; a missing program is 127', async () => {
    const r = await t.exec(['sh', '-c', 'printf "%s|%s|" "$VL_X" "$(pwd)"; cat; echo err >&2; exit 5'], {
      env: { VL_X: "a 'b' $c" },
      cwd: tb.sanDir,
      stdin: 'from-stdin',
    });
    assert.deepEqual(r, { code: 5, stdout: `a 'b' $c|${tb.sanDir}|from-stdin`, stderr: 'err\n' });
    assert.equal((await t.exec(['/nonexistent/vl-prog'])).code, 127);
  });

  it('runs commands inside the node namespace', async () => {
    const r = await execOk(t, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    assert.match(r, new RegExp(`inet ${node.address.replace(/\./g, '\\.')}/24`));
  });

  it('ends the remote process group when a command times out', async () => {
    const p = t.spawn(['sh', '-c', 'sleep 300 & echo $!; wait'], { timeoutMs: 1500 });
    const pid = await new Promise<number>((resolve) => p.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim()))));
    assert.ok((await pidsIn(node)).includes(pid), 'the remote sleep runs in the node namespace before the timeout');
    await assert.rejects(p.done, TransportTimeoutError);
    await until(`remote pid ${pid} to be gone`, () => !alive(pid), 5000);
    assert.ok(!(await pidsIn(node)).includes(pid));
  });

  it('a killed connection fails the running command; the next command reconnects', async () => {
    const opened = t.connectionsOpened;
    const p = t.spawn(['sh', '-c', 'echo $$; exec sleep 60'], { timeoutMs: 0 });
    const pid = await new Promise<number>((resolve) => p.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim()))));
    const sessionSshd = ppid(pid);
    assert.match(readFileSync(`/proc/${sessionSshd}/cmdline`, 'utf8'), /^sshd/);
    const t0 = Date.now();
    process.kill(sessionSshd, 'SIGKILL'); // the sshd child serving this connection
    const err = await p.done.catch((e: unknown) => e);
    assert.ok(err instanceof TransportError && !(err instanceof TransportTimeoutError), String(err));
    assert.ok(Date.now() - t0 < 10_000);
    const r = await execOk(t, ['echo', 'again']);
    assert.equal(r, 'again\n');
    assert.equal(t.connectionsOpened, opened + 1);
    process.kill(pid, 'SIGKILL'); // the orphaned sleep (sshd was killed without a chance to hang up)
  });

  it('keepalive detects a connection that went silent; the next command reconnects', async () => {
    const k = sshFor(node, { keepaliveIntervalMs: 300, keepaliveCountMax: 2 });
    try {
      await execOk(k, ['true']);
      const p = k.exec(['sleep', '30'], { timeoutMs: 0 });
      // drop everything sshd sends from now on: no RST, no FIN, just silence
      const nft = (args: string[]) => nodeExec(node, ['nft', ...args]);
      assert.equal((await nft(['add', 'table', 'inet', 'vltest'])).code, 0);
      try {
        await nft(['add', 'chain', 'inet', 'vltest', 'out', '{ type filter hook output priority 0; }']);
        await nft(['add', 'rule', 'inet', 'vltest', 'out', 'tcp', 'sport', '22', 'drop']);
        const t0 = Date.now();
        const err = await p.catch((e: unknown) => e);
        assert.ok(err instanceof TransportError && !(err instanceof TransportTimeoutError), String(err));
        assert.ok(Date.now() - t0 < 10_000, `detected after ${Date.now() - t0} ms`);
      } finally {
        await nft(['delete', 'table', 'inet', 'vltest']);
      }
      assert.equal(await execOk(k, ['echo', 'back']), 'back\n');
      assert.equal(k.connectionsOpened, 2);
    } finally {
      await k.close();
    }
  });

  it('a command on a connection gone silent fails at its own deadline, not at keepalive; the next one reconnects', async () => {
    // Keepalive far away (60 s): only the command's deadline can end the unanswered session open.
    const k = sshFor(node, { keepaliveIntervalMs: 30_000, keepaliveCountMax: 2 });
    try {
      await execOk(k, ['true']);
      const nft = (args: string[]) => nodeExec(node, ['nft', ...args]);
      assert.equal((await nft(['add', 'table', 'inet', 'vltest2'])).code, 0);
      try {
        await nft(['add', 'chain', 'inet', 'vltest2', 'out', '{ type filter hook output priority 0; }']);
        await nft(['add', 'rule', 'inet', 'vltest2', 'out', 'tcp', 'sport', '22', 'drop']);
        const t0 = Date.now();
        const err = await k.exec(['true'], { timeoutMs: 1500 }).catch((e: unknown) => e);
        const ms = Date.now() - t0;
        assert.ok(err instanceof TransportTimeoutError, String(err));
        assert.ok(ms < 5_000, `failed after ${ms} ms (the deadline is 1.5 s)`);
      } finally {
        await nft(['delete', 'table', 'inet', 'vltest2']);
      }
      assert.equal(await execOk(k, ['echo', 'back']), 'back\n');
      assert.equal(k.connectionsOpened, 2, 'the silent connection was dropped and a new one made');
    } finally {
      await k.close();
    }
  });

  it('bounds concurrent commands per host and queues the rest', async () => {
    const marker = join(tb.sanDir, 'conc');
    await Promise.all(Array.from({ length: 12 }, () => execOk(t, ['sh', '-c', overlapScript(1.5), 'sh', marker])));
    assert.deepEqual(maxOverlap(await readFile(marker, 'utf8')), { max: 4, lines: 24 });
  });

  it('a session the server refuses (its MaxSessions is 10) is tried again: every command runs once', async () => {
    // 16 commands on one connection where sshd allows 10 sessions: 6 are refused at first.
    const greedy = sshFor(node, { sessionsPerConnection: 16, maxConcurrent: 16 });
    const marker = join(tb.sanDir, 'refused');
    try {
      const results = await Promise.all(Array.from({ length: 16 }, (_, i) => greedy.exec(['sh', '-c', 'echo "$1" >> "$2"; sleep 0.5', 'sh', String(i), marker])));
      assert.deepEqual(results.map((r) => [r.code, r.stderr]), Array.from({ length: 16 }, () => [0, '']));
      const ran = (await readFile(marker, 'utf8')).trim().split('\n').map(Number).sort((a, b) => a - b);
      assert.deepEqual(ran, Array.from({ length: 16 }, (_, i) => i), 'each command ran exactly once');
    } finally {
      await greedy.close();
    }
  });

  it('writes files atomically with their mode, binary-safe', async () => {
    const f = join(tb.sanDir, "a file with 'quotes'");
    const data = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await t.writeFile(f, data, 0o600);
    assert.deepEqual(await readFile(f), data);
    assert.equal((await execOk(t, ['stat', '-c', '%a', f])).trim(), '600');
    await assert.rejects(t.writeFile('/nonexistent-dir/x', 'y'), TransportError);
  });

  it('connects to a unix socket and a TCP port on the host', async () => {
    const sock = join(tb.sanDir, 'echo.sock');
    const srv = t.spawn(['socat', `UNIX-LISTEN:${sock},fork`, 'EXEC:cat'], { timeoutMs: 30_000 });
    const tcp = t.spawn(['socat', 'TCP-LISTEN:7001,bind=127.0.0.1,reuseaddr,fork', 'EXEC:cat'], { timeoutMs: 30_000 });
    try {
      await until('socat listening', async () => (await t.exec(['test', '-S', sock])).code === 0 && (await t.exec(['sh', '-c', 'ss -ltn | grep -q 127.0.0.1:7001'])).code === 0);
      for (const target of [{ unixSocket: sock }, { port: 7001 }]) {
        const s = await t.connect(target);
        s.write('ping\n');
        const got = await new Promise<string>((r) => s.once('data', (b: Buffer) => r(b.toString())));
        assert.equal(got, 'ping\n');
        s.destroy();
      }
    } finally {
      srv.kill();
      tcp.kill();
      await Promise.allSettled([srv.done, tcp.done]);
    }
  });

  it('transportFor picks SSH or local from spec.transport; the cache reuses a transport', async () => {
    const pn: PhysicalNode = {
      apiVersion: 'virtualinux.org/v1alpha1',
      kind: 'PhysicalNode',
      metadata: { name: node.name },
      spec: {
        address: node.address,
        ssh: { port: node.port, user: 'root', identityFile: tb.identityFile, hostKey: node.hostKey },
        capacity: { cores: 1, memoryMiB: 512 },
        hypervisor: 'qemu',
        storageRoot: tb.sanDir,
      },
    };
    const cache = new TransportCache();
    try {
      const a = cache.get(pn);
      assert.ok(a instanceof SshTransport);
      assert.equal(cache.get(pn), a);
      assert.match(await execOk(a, ['ip', '-o', 'addr', 'show', 'dev', 'eth0']), new RegExp(node.address.replace(/\./g, '\\.')));
      const b = cache.get({ ...pn, spec: { ...pn.spec!, transport: 'local' } });
      assert.ok(b instanceof LocalTransport);
      assert.notEqual(b, a);
      const local = transportFor({ ...pn, spec: { ...pn.spec!, transport: 'local' } });
      assert.equal((await local.exec(['true'])).code, 0);
      await local.close();
    } finally {
      await cache.closeAll();
    }
  });
});
