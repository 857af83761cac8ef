// Picks the storage driver for a VC (spec.storageDriver, default qcow2).
//
// `evms`: EVMS itself left the distributions around 2008; the driver makes its snapshots the way
// EVMS did, as device-mapper snapshot targets on the SAN disk (evms-driver.ts, ADR 0006).

import type { StorageDriverName } from '../../api/types.js';
import type { Transport } from '../transport/types.js';
import { BtrfsDriver } from './btrfs-driver.js';
import { EvmsDriver, type EvmsDriverOptions } from './evms-driver.js';
import { LvmDriver, type LvmDriverOptions } from './lvm-driver.js';
import { Qcow2Driver } from './qcow2-driver.js';
import { SimStorageDriver } from './sim-driver.js';
import { simHostOf } from '../transport/sim-transport.js';
import type { StorageDriver } from './types.js';
import { StorageError } from './types.js';

export interface DriverOptions {
  lvm?: LvmDriverOptions;
  /** The evms driver's VG (default vlsan) and the SAN disk to make it on. */
  evms?: EvmsDriverOptions;
}

export function createStorageDriver(name: StorageDriverName, t: Transport, opts: DriverOptions = {}): StorageDriver {
  // Simulation only (benchmarks): a sim host's storage answers through its transport, whatever the driver.
  if (simHostOf(t)) return new SimStorageDriver(t, name);
  switch (name) {
    case 'qcow2':
      return new Qcow2Driver(t);
    case 'btrfs':
      return new BtrfsDriver(t);
    case 'lvm':
      if (!opts.lvm) throw new StorageError('the lvm storage driver needs a volume group: configure it in the manager (lvm.vg)');
      return new LvmDriver(t, opts.lvm);
    case 'evms':
      return new EvmsDriver(t, opts.evms);
  }
}

export * from './types.js';
export { vcStorageDir } from './file-volumes.js';
