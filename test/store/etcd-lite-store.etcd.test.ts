// EtcdLiteStore (api/store/etcd-lite/: vcctl apply's etcd client over node:http2 with hand-written
// protobuf) against a real etcd:
//   - the store conformance suite, on a store whose reads and writes (gets, lists, batches, fenced
//     writes) go through the light client and whose watches and leases, which it does not offer,
//     through an EtcdStore on the same keys, so every write the suite checks went through it;
//   - what it refuses (watch, leases) says so;
//   - TLS with client certificates and user/password authentication, as openStore's options;
//   - what it writes, EtcdStore reads alike, and the other way round (same bytes, same revision).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdStore } from '../../api/store/etcd-store.js';
import { EtcdLiteStore } from '../../api/store/etcd-lite/etcd-lite-store.js';
import { parseStoreUrl } from '../../api/store/open-store.js';
import { StoreError, type Store } from '../../api/store/types.js';
import { startEtcd, type EtcdHarness } from '../../hack/lib/etcd-harness.js';
import { describeStoreConformance, widget } from '../conformance/store-conformance.js';
import { makeCerts } from './tls-certs.js';

let etcd: EtcdHarness | undefined;
before(async function () {
  this.timeout(30_000);
  etcd = await startEtcd();
});
after(async () => {
  await etcd?.stop();
});

/** Reads and writes through `lite`, watches and leases through `full` (the same prefix). */
function hybrid(lite: EtcdLiteStore, full: EtcdStore): Store {
  return {
    backend: 'etcd',
    create: (o, w) => lite.create(o, w),
    get: (r) => lite.get(r),
    tryGet: (r) => lite.tryGet(r),
    list: (k, o) => lite.list(k, o),
    update: (o, w) => lite.update(o, w),
    updateStatus: (o, w) => lite.updateStatus(o, w),
    delete: (r, o) => lite.delete(r, o),
    batch: (ops, o) => lite.batch(ops, o),
    revision: () => lite.revision(),
    watch: (k, o, h) => full.watch(k, o, h),
    leases: full.leases,
    close: async () => { await lite.close(); await full.close(); },
  };
}

describeStoreConformance('etcd, light client for reads and writes', async () => {
  const prefix = `/lite-${randomBytes(4).toString('hex')}`;
  const lite = await EtcdLiteStore.connect({ endpoints: etcd!.endpoints, prefix });
  const full = await EtcdStore.connect({ endpoints: etcd!.endpoints, prefix });
  return {
    store: hybrid(lite, full),
    compact: (rev) => etcd!.compact(rev),
    cleanup: async () => {
      const leases = await full.client.leaseClient.leaseLeases();
      for (const l of leases.leases) await full.leases.revoke(String(l.ID));
      await lite.close();
      await full.close();
    },
  };
});

describe('EtcdLiteStore', function () {
  this.timeout(60_000);

  it('reads what EtcdStore wrote and the other way round, and refuses watches and leases by name', async () => {
    const prefix = `/lite-x-${randomBytes(4).toString('hex')}`;
    const lite = await EtcdLiteStore.connect({ endpoints: etcd!.endpoints, prefix });
    const full = await EtcdStore.connect({ endpoints: etcd!.endpoints, prefix });
    try {
      const a = await full.create(widget('a', 'default', 1, { team: 'x' }));
      const b = await lite.create(widget('b', 'default', 2, { team: 'x' }));
      assert.deepEqual(await lite.get({ kind: 'Widget', name: 'a', namespace: 'default' }), a);
      assert.deepEqual(await full.get({ kind: 'Widget', name: 'b', namespace: 'default' }), b);
      const [fromLite, fromFull] = [await lite.list('Widget', { labelSelector: 'team=x' }), await full.list('Widget', { labelSelector: 'team=x' })];
      assert.deepEqual(fromLite, fromFull);
      assert.equal(fromLite.items.length, 2);
      const raw = await full.client.get(`${prefix}/widgets/default/b`).string();
      assert.equal(raw, JSON.stringify({ ...b, metadata: { ...b.metadata, resourceVersion: undefined } }));
      assert.throws(() => lite.watch('Widget', { fromRevision: 1 }, { onEvent: () => undefined, onError: () => undefined }), (err: Error) =>
        err instanceof StoreError && /watching Widget is not available on the light etcd client/.test(err.message));
      await assert.rejects(lite.leases.grant(5), /lease grant is not available on the light etcd client/);
    } finally {
      await lite.close();
      await full.close();
    }
  });

  it('fails clearly when no member answers, naming the members', async () => {
    // A port nobody listens on (the harness's etcd moved on to its own ports).
    const dead = new URL(etcd!.endpoints[0]);
    dead.port = String(Number(dead.port) === 65535 ? 65534 : 65535);
    await assert.rejects(EtcdLiteStore.connect({ endpoints: [dead.origin], callTimeoutMs: 1500 }),
      /store unavailable at etcd:\/\/127\.0\.0\.1:6553\d: no answer within 1\.5 s \(127\.0\.0\.1:6553\d: connection refused\)/);
  });
});

describe('EtcdLiteStore with TLS and authentication', function () {
  this.timeout(60_000);
  let dir: string;
  let secure: EtcdHarness | undefined;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'vl-lite-tls-')); });
  afterEach(async () => {
    await secure?.stop();
    secure = undefined;
    rmSync(dir, { recursive: true, force: true });
  });
  const roundTrip = async (url: string, env: NodeJS.ProcessEnv = {}) => {
    const loc = parseStoreUrl(url, env);
    assert.equal(loc.backend, 'etcd');
    const s = await EtcdLiteStore.connect(loc.backend === 'etcd' ? loc.options : { endpoints: [] });
    try {
      await s.create(widget(`w-${randomBytes(3).toString('hex')}`));
      assert.ok((await s.list('Widget')).items.length >= 1);
    } finally {
      await s.close();
    }
  };

  it('connects with mutual TLS, and fails clearly without a client certificate or with a CA file that is missing', async () => {
    const c = makeCerts(dir);
    secure = await startEtcd({ tls: c });
    const port = new URL(secure.endpoints[0]).port;
    await roundTrip(`etcd://127.0.0.1:${port}?cacert=${c.ca}&cert=${c.clientCert}&key=${c.clientKey}&prefix=/lite`);
    const noCert = parseStoreUrl(`etcd://127.0.0.1:${port}?cacert=${c.ca}`, {});
    await assert.rejects(EtcdLiteStore.connect(noCert.backend === 'etcd' ? { ...noCert.options, callTimeoutMs: 3000 } : { endpoints: [] }),
      /etcd at https:\/\/127\.0\.0\.1:\d+ failed: |store unavailable at etcd:\/\/127\.0\.0\.1:\d+/);
    await assert.rejects(EtcdLiteStore.connect({ endpoints: [`https://127.0.0.1:${port}`], tls: { cacert: join(dir, 'missing.pem') } }),
      /cannot read the etcd CA certificate file .*missing\.pem/);
  });

  it('authenticates with user and password, and says so when they are wrong', async () => {
    secure = await startEtcd();
    await secure.admin.user('root').create('rootpw');
    await secure.admin.user('root').addRole('root');
    await secure.admin.auth.authEnable({});
    const port = new URL(secure.endpoints[0]).port;
    await roundTrip(`etcd://127.0.0.1:${port}`, { VCCTL_ETCD_USER: 'root', VCCTL_ETCD_PASSWORD: 'rootpw' });
    await assert.rejects(EtcdLiteStore.connect({ endpoints: [`http://127.0.0.1:${port}`], auth: { user: 'root', password: 'wrong' } }),
      /etcd at http:\/\/127\.0\.0\.1:\d+ failed: .*authentication failed/);
    await assert.rejects(EtcdLiteStore.connect({ endpoints: [`http://127.0.0.1:${port}`] }), /etcd at http:\/\/127\.0\.0\.1:\d+ failed: /);
  });
});
