// Picks the storage driver for a VC (spec.storageDriver, default qcow2).
//
// `evms` is not built: EVMS left the distributions around 2008, and the VirtuaLinux patch that
// disables reset-on-activate (a flag in the EVMS configuration file, paper section 3.2) was never
// published, so its exact syntax cannot be written down; `lvm` thin snapshots cover its role.

import type { StorageDriverName } from '../../api/types.js';
import type { Transport } from '../transport/types.js';
import { BtrfsDriver } from './btrfs-driver.js';
import { LvmDriver, type LvmDriverOptions } from './lvm-driver.js';
import { Qcow2Driver } from './qcow2-driver.js';
import { SimStorageDriver } from './sim-driver.js';
import { simHostOf } from '../transport/sim-transport.js';
import type { StorageDriver } from './types.js';
import { StorageError } from './types.js';

export interface DriverOptions {
  lvm?: LvmDriverOptions;
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
      throw new StorageError(
        'the evms storage driver is not available (EVMS is unmaintained and its reset-on-activate switch is unpublished); use lvm, qcow2 or btrfs',
      );
  }
}

export * from './types.js';
export { vcStorageDir } from './file-volumes.js';
