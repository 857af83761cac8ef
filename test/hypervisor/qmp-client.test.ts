import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Duplex } from 'node:stream';
import { QmpClient, QmpClosedError, QmpError, QmpTimeoutError } from '../../drivers/hypervisor/qmp-client.js';

/** A scripted QMP peer on a stream pair: what the client writes comes to `fromClient`. */
function pipePair(): { client: Duplex; toClient: PassThrough; fromClient: PassThrough } {
  const toClient = new PassThrough();
  const fromClient = new PassThrough();
  const client = Duplex.from({ readable: toClient, writable: fromClient });
  return { client, toClient, fromClient };
}

function nextCommand(fromClient: PassThrough): Promise<{ execute: string; id: string; arguments?: unknown }> {
  return new Promise((resolve) => fromClient.once('data', (b: Buffer) => resolve(JSON.parse(b.toString()))));
}

describe('QmpClient', () => {
  it('negotiates capabilities, matches replies by id across interleaved events, reports errors', async () => {
    const { client, toClient, fromClient } = pipePair();
    toClient.write('{"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": ["oob"]}}\r\n');
    const capP = nextCommand(fromClient);
    const connecting = QmpClient.connect(client);
    const cap = await capP;
    assert.equal(cap.execute, 'qmp_capabilities');
    toClient.write(JSON.stringify({ return: {}, id: cap.id }) + '\r\n');
    const q = await connecting;
    assert.deepEqual((q.greeting as { capabilities: string[] }).capabilities, ['oob']);

    const events: string[] = [];
    q.onEvent((e) => events.push(e.event));
    const c1 = nextCommand(fromClient);
    const p1 = q.execute('query-status');
    const cmd1 = await c1;
    const c2 = nextCommand(fromClient);
    const p2 = q.execute('bogus', { x: 1 });
    const cmd2 = await c2;
    assert.notEqual(cmd1.id, cmd2.id);
    assert.deepEqual(cmd2.arguments, { x: 1 });
    // replies out of order, split across chunks, with an event in between
    const reply2 = JSON.stringify({ error: { class: 'CommandNotFound', desc: "The command bogus has not been found" }, id: cmd2.id });
    toClient.write(reply2.slice(0, 10));
    toClient.write(reply2.slice(10) + '\r\n{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}\r\n');
    toClient.write(JSON.stringify({ return: { status: 'running', running: true }, id: cmd1.id }) + '\r\n');
    assert.deepEqual(await p1, { status: 'running', running: true });
    await assert.rejects(p2, (e: Error) => e instanceof QmpError && e.errorClass === 'CommandNotFound');
    assert.deepEqual(events, ['STOP']);

    const waiting = q.waitEvent('RESUME', undefined, 5000);
    toClient.write('{"event": "RESUME"}\r\n');
    assert.equal((await waiting).event, 'RESUME');

    await assert.rejects(q.execute('slow', undefined, { timeoutMs: 50 }), QmpTimeoutError);
    const pending = q.execute('query-status');
    toClient.end();
    await assert.rejects(pending, QmpClosedError);
    await assert.rejects(q.execute('query-status'), QmpClosedError);
  });

  it('fails the connect when no greeting arrives in time', async () => {
    const { client } = pipePair();
    await assert.rejects(QmpClient.connect(client, { timeoutMs: 100 }), QmpTimeoutError);
  });

  describe('against a real QEMU (-machine none)', function () {
    this.timeout(30_000);
    let dir: string;
    let qemu: ChildProcess;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'vc-qmp-'));
      const sock = join(dir, 'qmp.sock');
      qemu = spawn('qemu-system-x86_64', ['-machine', 'none', '-display', 'none', '-nodefaults', '-qmp', `unix:${sock},server=on,wait=off`, '-S'], {
        stdio: 'ignore',
      });
      for (let i = 0; i < 100; i++) {
        const ok = await new Promise<boolean>((r) => net.connect(sock).once('connect', function (this: net.Socket) { this.destroy(); r(true); }).once('error', () => r(false)));
        if (ok) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('QEMU did not open its QMP socket');
    });
    after(() => {
      if (qemu.pid && qemu.exitCode === null) process.kill(qemu.pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    });

    it('queries version and status, and sees the connection close on quit', async () => {
      const q = await QmpClient.connect(net.connect(join(dir, 'qmp.sock')));
      const v = await q.execute<{ qemu: { major: number } }>('query-version');
      assert.ok(v.qemu.major >= 7);
      assert.deepEqual(await q.execute('query-status'), { status: 'prelaunch', singlestep: false, running: false });
      await assert.rejects(q.execute('no-such-command'), (e: Error) => e instanceof QmpError && e.errorClass === 'CommandNotFound');
      const exited = new Promise((r) => qemu.once('exit', r));
      await q.execute('quit').catch((e) => assert.ok(e instanceof QmpClosedError));
      await exited;
      await assert.rejects(q.execute('query-status'), QmpClosedError);
    });
  });
});
