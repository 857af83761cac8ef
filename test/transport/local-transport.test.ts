import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { TransportAbortedError, TransportTimeoutError, execOk } from '../../drivers/transport/types.js';
import { ECHO_ARGV, HOSTILE_ARGS, parseNulList } from './argv-cases.js';
import { alive, maxOverlap, overlapScript, until } from './helpers.js';

async function waitGone(pid: number, ms: number): Promise<boolean> {
  return until(`pid ${pid} gone`, () => !alive(pid), ms).then(() => true, () => false);
}

describe('LocalTransport', function () {
  let t: LocalTransport;
  let dir: string;
  before(async () => {
    t = new LocalTransport({ host: 'local-test', maxConcurrent: 4 });
    dir = await mkdtemp(join(tmpdir(), 'vl-local-'));
  });
  after(async () => {
    await t.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('passes every hostile argument through unchanged', async () => {
    const r = await t.exec([...ECHO_ARGV, ...HOSTILE_ARGS]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(parseNulList(r.stdout), HOSTILE_ARGS);
    assert.equal(existsSync('/tmp/vl-should-not-exist'), false);
  });

  it('returns non-zero codes, stderr and stdin data', async () => {
    const r = await t.exec(['sh', '-c', 'cat; echo oops >&2; exit 3'], { stdin: 'hello\n' });
    assert.deepEqual(r, { code: 3, stdout: 'hello\n', stderr: 'oops\n' });
  });

  it('reports a missing program as code 127, like a shell', async () => {
    const r = await t.exec(['/nonexistent/vl-prog', 'x']);
    assert.equal(r.code, 127);
    assert.match(r.stderr, /not found/);
  });

  it('passes env and cwd', async () => {
    const r = await execOk(t, ['sh', '-c', 'printf "%s %s" "$VL_X" "$(pwd)"'], { env: { VL_X: 'a b' }, cwd: dir });
    assert.equal(r, `a b ${dir}`);
  });

  it('kills the whole process group on timeout', async () => {
    const p = t.spawn(['sh', '-c', 'sleep 300 & echo $!; wait'], { timeoutMs: 700 });
    const pid = await new Promise<number>((resolve) => p.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim()))));
    assert.ok(alive(pid), 'the background sleep runs before the timeout');
    const t0 = Date.now();
    await assert.rejects(p.done, TransportTimeoutError);
    assert.ok(Date.now() - t0 < 4000);
    assert.ok(await waitGone(pid, 3000), `grandchild ${pid} survived the timeout`);
  });

  it('kills a process that ignores SIGTERM with SIGKILL after the grace period', async () => {
    const p = t.spawn(['sh', '-c', 'trap "" TERM; echo $$; while :; do sleep 0.1; done'], { timeoutMs: 300 });
    const pid = await new Promise<number>((resolve) => p.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim()))));
    await assert.rejects(p.done, TransportTimeoutError);
    assert.ok(await waitGone(pid, 3000));
  });

  it('aborts on the caller signal', async () => {
    const ac = new AbortController();
    const pr = t.exec(['sleep', '300'], { signal: ac.signal, timeoutMs: 0 });
    setTimeout(() => ac.abort(), 200);
    await assert.rejects(pr, TransportAbortedError);
  });

  it('bounds concurrent commands and queues the rest', async () => {
    const marker = join(dir, 'conc');
    await Promise.all(Array.from({ length: 10 }, () => execOk(t, ['sh', '-c', overlapScript(0.3), 'sh', marker])));
    assert.deepEqual(maxOverlap(await readFile(marker, 'utf8')), { max: 4, lines: 20 });
  });

  it('writes files atomically with the given mode', async () => {
    const f = join(dir, 'sub file');
    await t.writeFile(f, Buffer.from([0, 1, 2, 255]), 0o600);
    assert.deepEqual(await readFile(f), Buffer.from([0, 1, 2, 255]));
    assert.equal((await stat(f)).mode & 0o777, 0o600);
    await t.writeFile(f, 'second', 0o640);
    assert.equal(await readFile(f, 'utf8'), 'second');
    assert.equal((await stat(f)).mode & 0o777, 0o640);
  });

  it('connects to a unix socket and a TCP port', async () => {
    const sockPath = join(dir, 'echo.sock');
    const srv = net.createServer((c) => c.pipe(c));
    const tcp = net.createServer((c) => c.end('tcp-ok'));
    await new Promise<void>((r) => srv.listen(sockPath, r));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    try {
      const s = await t.connect({ unixSocket: sockPath });
      s.write('ping');
      const got = await new Promise<string>((r) => s.once('data', (b: Buffer) => r(b.toString())));
      assert.equal(got, 'ping');
      s.destroy();
      const port = (tcp.address() as net.AddressInfo).port;
      const s2 = await t.connect({ port });
      const got2 = await new Promise<string>((r) => s2.once('data', (b: Buffer) => r(b.toString())));
      assert.equal(got2, 'tcp-ok');
      s2.destroy();
    } finally {
      srv.close();
      tcp.close();
    }
  });
});
