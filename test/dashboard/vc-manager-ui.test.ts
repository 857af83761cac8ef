// vc-manager's dashboard flags, parsed and in a real vc-manager process on an embedded store.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_UI_ADDR, parseManagerArgs } from '../../operator/vc-manager.js';
import { waitFor } from '../controllers/helpers.js';
import { startManager, type ManagerProcess } from '../controllers/processes.js';

describe('vc-manager dashboard flags', function () {
  this.timeout(60_000);
  let dir: string;
  let m: ManagerProcess | undefined;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'vl-dash-mgr-')); });
  afterEach(async () => {
    await m?.kill();
    m = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('parses --ui-addr (default loopback only, off) and --ui-token-file, refusing bad values', () => {
    assert.equal(DEFAULT_UI_ADDR, '127.0.0.1:8384');
    assert.equal(parseManagerArgs([], {}).uiAddr, DEFAULT_UI_ADDR);
    assert.equal(parseManagerArgs([], {}).uiAddrExplicit, undefined);
    assert.equal(parseManagerArgs(['--ui-addr', 'off'], {}).uiAddr, undefined);
    assert.equal(parseManagerArgs(['--ui-addr=[::1]:0'], {}).uiAddr, '[::1]:0');
    assert.equal(parseManagerArgs(['--ui-token-file', '/t'], {}).uiTokenFile, '/t');
    assert.throws(() => parseManagerArgs(['--ui-addr', 'localhost'], {}), /--ui-addr localhost: use HOST:PORT/);
    assert.throws(() => parseManagerArgs(['--ui-addr', 'off', '--ui-token-file', '/t'], {}), /--ui-token-file needs the dashboard/);
  });

  it('serves the dashboard where asked, and logs its address', async () => {
    m = startManager('ui-a', ['--store', `file:${join(dir, 'store.db')}`, '--ui-addr', '127.0.0.1:0']);
    const line = await waitFor('the dashboard log line', () => m!.lines.find((l) => l.msg === 'dashboard listening'), 30_000, 50);
    assert.equal(line.actions, false);
    const r = await fetch(String(line.url));
    assert.equal(r.status, 200);
    assert.match(await r.text(), /<script type="module" src="\/app\.js"><\/script>/);
  });

  it('exits with a message naming the file when the token file is unreadable or too short', async () => {
    m = startManager('ui-b', ['--store', `file:${join(dir, 'store.db')}`, '--ui-addr', '127.0.0.1:0', '--ui-token-file', join(dir, 'missing')]);
    assert.equal(await m.exited, 2);
    assert.match(m.text.join('\n'), /--ui-token-file .*missing: cannot read it \(ENOENT\)/);
    writeFileSync(join(dir, 'short'), 'abc\n');
    m = startManager('ui-c', ['--store', `file:${join(dir, 'store.db')}`, '--ui-addr', '127.0.0.1:0', '--ui-token-file', join(dir, 'short')]);
    assert.equal(await m.exited, 2);
    assert.match(m.text.join('\n'), /short: the token \(its first line\) must have at least 16 characters/);
  });

  it('an explicit --ui-addr that is taken stops the start with a clear error', async () => {
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (busy.address() as { port: number }).port;
      m = startManager('ui-d', ['--store', `file:${join(dir, 'store.db')}`, '--ui-addr', `127.0.0.1:${port}`]);
      assert.equal(await m.exited, 1);
      assert.ok(m.lines.some((l) => l.msg === 'cannot serve the dashboard; choose another --ui-addr' && /EADDRINUSE/.test(String(l.err))));
    } finally {
      busy.close();
    }
  });
});
