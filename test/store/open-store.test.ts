import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, parseStoreUrl } from '../../api/store/open-store.js';
import { startEtcd, type EtcdHarness } from '../../hack/lib/etcd-harness.js';

describe('parseStoreUrl', () => {
  it('defaults to the embedded store under XDG_DATA_HOME or ~/.local/share', () => {
    assert.deepEqual(parseStoreUrl(undefined, { XDG_DATA_HOME: '/x/data', HOME: '/home/u' }),
      { backend: 'sqlite', path: '/x/data/virtualinux/store.db' });
    assert.deepEqual(parseStoreUrl(undefined, { HOME: '/home/u' }),
      { backend: 'sqlite', path: '/home/u/.local/share/virtualinux/store.db' });
    assert.deepEqual(parseStoreUrl(undefined, { HOME: '/home/u', VCCTL_STORE: 'file:/s.db' }), { backend: 'sqlite', path: '/s.db' });
    assert.deepEqual(parseStoreUrl('file:rel/s.db', { VCCTL_STORE: 'file:/other' }), { backend: 'sqlite', path: 'rel/s.db' });
    assert.deepEqual(parseStoreUrl('file:///abs/s%20b.db', {}), { backend: 'sqlite', path: '/abs/s b.db' });
  });

  it('parses etcd endpoints, TLS and auth from the URL or the environment', () => {
    assert.deepEqual(parseStoreUrl('etcd://a:2379,b:2380', {}), {
      backend: 'etcd', options: { endpoints: ['http://a:2379', 'http://b:2380'] },
    });
    assert.deepEqual(parseStoreUrl('etcd://10.0.0.1:2379?cacert=/ca.pem&cert=/c.pem&key=/k.pem&prefix=/vl', { VCCTL_ETCD_CACERT: '/other.pem' }), {
      backend: 'etcd',
      options: { endpoints: ['https://10.0.0.1:2379'], tls: { cacert: '/ca.pem', cert: '/c.pem', key: '/k.pem' }, prefix: '/vl' },
    });
    assert.deepEqual(parseStoreUrl('etcd://h:1', { VCCTL_ETCD_USER: 'root', VCCTL_ETCD_PASSWORD: 'pw' }), {
      backend: 'etcd', options: { endpoints: ['http://h:1'], auth: { user: 'root', password: 'pw' } },
    });
    assert.deepEqual(parseStoreUrl('etcds://h:1', {}), {
      backend: 'etcd', options: { endpoints: ['https://h:1'], tls: { cacert: undefined, cert: undefined, key: undefined } },
    });
  });

  it('rejects bad URLs with a message saying what to write', () => {
    const cases: [string, string][] = [
      ['mysql://x', 'invalid store "mysql://x": use etcd://HOST:PORT[,HOST:PORT...][?cacert=FILE&cert=FILE&key=FILE&user=U&password=P&prefix=/P] or file:PATH'],
      ['etcd://host', 'invalid store "etcd://host": endpoint "host" is not HOST:PORT'],
      ['etcd://', 'invalid store "etcd://": no endpoint given'],
      ['etcd://h:1?tls=1', 'invalid store "etcd://h:1?tls=1": unknown option "tls"; known: cacert, cert, key, user, password, prefix'],
      ['etcd://h:1?cert=/c', 'invalid store "etcd://h:1?cert=/c": cert and key go together: give both or neither'],
      ['etcd://h:1?password=secret', 'invalid store "etcd://h:1?password=***": user and password go together: give both or neither'],
      ['file:', 'invalid store "file:": the path is empty'],
      ['file://host/x', 'invalid store "file://host/x": a file URL has no host: write file:/abs/path, file:///abs/path or file:relative/path'],
    ];
    const env = { VCCTL_ETCD_PASSWORD: 'x' };
    for (const [url, msg] of cases) {
      assert.throws(() => parseStoreUrl(url, url.includes('password=') ? {} : env), { message: msg }, url);
    }
  });
});

describe('openStore', () => {
  let dir: string;
  let etcd: EtcdHarness | undefined;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'vl-open-')); });
  afterEach(async () => {
    await etcd?.stop();
    etcd = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('opens the default embedded store and keeps data there', async () => {
    const env = { XDG_DATA_HOME: dir };
    const s = await openStore(undefined, env);
    assert.equal(s.backend, 'sqlite');
    await s.create({ apiVersion: 'v1', kind: 'Widget', metadata: { name: 'a', namespace: 'default' } });
    await s.close();
    const again = await openStore(`file:${join(dir, 'virtualinux', 'store.db')}`, {});
    assert.equal((await again.list('Widget')).items.length, 1);
    await again.close();
  });

  it('does not load the etcd client (grpc) for the embedded store', () => {
    const script = `
      import { openStore } from './api/store/open-store.ts';
      import { createRequire } from 'node:module';
      const s = await openStore(process.argv[1], {});
      await s.close();
      const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => /etcd3|@grpc/.test(k));
      console.log(JSON.stringify(loaded));`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, `file:${join(dir, 's.db')}`], { encoding: 'utf8' });
    assert.deepEqual(JSON.parse(out), []);
    // The same probe sees grpc once the etcd module is imported, so the check can fail.
    const withEtcd = script.replace("import { createRequire }", "import './api/store/etcd-store.ts';\n      import { createRequire }");
    const out2 = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', withEtcd, `file:${join(dir, 's.db')}`], { encoding: 'utf8' });
    assert.ok(JSON.parse(out2).length > 0);
  });

  it('opens an etcd store from its URL', async function () {
    this.timeout(30_000);
    etcd = await startEtcd();
    const s = await openStore(undefined, { VCCTL_STORE: `${etcd.url}?prefix=/p1` });
    assert.equal(s.backend, 'etcd');
    await s.create({ apiVersion: 'v1', kind: 'Widget', metadata: { name: 'a', namespace: 'default' } });
    assert.equal((await s.list('Widget')).items.length, 1);
    await s.close();
  });

  it('fails clearly when etcd does not answer', async function () {
    this.timeout(30_000);
    await assert.rejects(openStore('etcd://127.0.0.1:1', {}), /store unavailable at etcd:\/\/127\.0\.0\.1:1: no answer within \d+ s \(127\.0\.0\.1:1: connection refused\)/);
  });
});
