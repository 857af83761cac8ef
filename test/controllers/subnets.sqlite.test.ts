// network/subnets on the embedded store: see subnets-suite.ts.

import type { Store } from '../../api/store/types.js';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import { tempSqliteStore, type TempSqliteStore } from './helpers.js';
import { describeSubnets } from './subnets-suite.js';

const open = new Map<Store, TempSqliteStore>();
describeSubnets('sqlite', {
  async open() {
    const t = tempSqliteStore();
    open.set(t.store, t);
    return t.store;
  },
  async connect(store) {
    return new SqliteStore(open.get(store)!.path, { pollIntervalMs: 10 });
  },
  async close(store) {
    await open.get(store)?.close();
    open.delete(store);
  },
});
