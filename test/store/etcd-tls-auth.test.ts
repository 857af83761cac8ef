// The etcd options of openStore against a real etcd: TLS with a CA, client certificates (mutual
// TLS) and user/password authentication. Certificates are made with openssl for each run.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../api/store/open-store.js';
import type { Store } from '../../api/store/types.js';
import { startEtcd, type EtcdHarness } from '../../hack/lib/etcd-harness.js';
import { makeCerts } from './tls-certs.js';

describe('openStore with etcd TLS and authentication', function () {
  this.timeout(60_000);
  let dir: string;
  let etcd: EtcdHarness | undefined;
  const stores: Store[] = [];
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'vl-tls-')); });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    await etcd?.stop();
    etcd = undefined;
    rmSync(dir, { recursive: true, force: true });
  });
  const open = async (url: string, env: NodeJS.ProcessEnv = {}) => {
    const s = await openStore(url, env);
    stores.push(s);
    return s;
  };
  const roundTrip = async (s: Store) => {
    await s.create({ apiVersion: 'v1', kind: 'Widget', metadata: { name: 'w', namespace: 'default' } });
    assert.equal((await s.list('Widget')).items.length, 1);
  };

  it('connects with mutual TLS from URL options or the environment, and fails clearly without a client certificate', async () => {
    const c = makeCerts(dir);
    etcd = await startEtcd({ tls: c });
    const port = new URL(etcd.endpoints[0]).port;
    await roundTrip(await open(`etcd://127.0.0.1:${port}?cacert=${c.ca}&cert=${c.clientCert}&key=${c.clientKey}&prefix=/url`));
    await roundTrip(await open(`etcd://127.0.0.1:${port}?prefix=/env`, {
      VCCTL_ETCD_CACERT: c.ca, VCCTL_ETCD_CERT: c.clientCert, VCCTL_ETCD_KEY: c.clientKey,
    }));
    await assert.rejects(openStore(`etcd://127.0.0.1:${port}?cacert=${c.ca}`, {}), /etcd at https:\/\/127\.0\.0\.1:\d+ failed: /);
    await assert.rejects(openStore(`etcd://127.0.0.1:${port}?cacert=${join(dir, 'missing.pem')}`, {}),
      /cannot read the etcd CA certificate file .*missing\.pem/);
  });

  it('authenticates with user and password', async () => {
    etcd = await startEtcd();
    const admin = etcd.admin;
    await admin.user('root').create('rootpw');
    await admin.user('root').addRole('root');
    await admin.auth.authEnable({});
    const port = new URL(etcd.endpoints[0]).port;
    await roundTrip(await open(`etcd://127.0.0.1:${port}`, { VCCTL_ETCD_USER: 'root', VCCTL_ETCD_PASSWORD: 'rootpw' }));
    await assert.rejects(openStore(`etcd://127.0.0.1:${port}`, { VCCTL_ETCD_USER: 'root', VCCTL_ETCD_PASSWORD: 'wrong' }),
      /etcd at http:\/\/127\.0\.0\.1:\d+ failed: .*authentication failed/);
    await assert.rejects(openStore(`etcd://127.0.0.1:${port}`, {}), /etcd at http:\/\/127\.0\.0\.1:\d+ failed: /);
  });
});
