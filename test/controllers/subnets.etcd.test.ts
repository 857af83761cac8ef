// network/subnets on a real etcd (the harness): see subnets-suite.ts. Each test has its own prefix.

import { randomBytes } from 'node:crypto';
import { EtcdStore } from '../../api/store/etcd-store.js';
import { startEtcd, type EtcdHarness } from '../../hack/lib/etcd-harness.js';
import { describeSubnets } from './subnets-suite.js';

let etcd: EtcdHarness | undefined;
before(async function () {
  this.timeout(30_000);
  etcd = await startEtcd();
});
after(async () => {
  await etcd?.stop();
});

describeSubnets('etcd', {
  open: () => EtcdStore.connect({ endpoints: etcd!.endpoints, prefix: `/subnets-${randomBytes(4).toString('hex')}` }),
  connect: (store) => EtcdStore.connect({ endpoints: etcd!.endpoints, prefix: (store as EtcdStore).prefix }),
  close: (store) => store.close(),
});
