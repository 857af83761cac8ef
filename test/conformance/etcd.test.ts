// The Store conformance suite on the etcd backend, against a real etcd started by the harness.
// Each test gets its own key prefix on the one etcd; leases a test left are revoked afterwards so
// that their expiry cannot advance the revision during a later test.

import { randomBytes } from 'node:crypto';
import { EtcdStore } from '../../api/store/etcd-store.js';
import { startEtcd, type EtcdHarness } from '../../hack/lib/etcd-harness.js';
import { describeStoreConformance } from './store-conformance.js';

let etcd: EtcdHarness | undefined;
before(async function () {
  this.timeout(30_000);
  etcd = await startEtcd();
});
after(async () => {
  await etcd?.stop();
});

describeStoreConformance('etcd', async () => {
  const store = await EtcdStore.connect({ endpoints: etcd!.endpoints, prefix: `/t-${randomBytes(4).toString('hex')}` });
  return {
    store,
    compact: (rev) => etcd!.compact(rev),
    cleanup: async () => {
      const leases = await store.client.leaseClient.leaseLeases();
      for (const l of leases.leases) await store.leases.revoke(String(l.ID));
      await store.close();
    },
  };
});
