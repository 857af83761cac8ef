// Drift guard between api/types.ts and crds/: for every kind, an object that sets EVERY field the
// TypeScript types declare (DeepRequired makes the compiler demand new optional fields too) must
// pass schema validation without an "unknown field". Adding a field to types.ts without adding it
// to the CRD fails this test (or its type check).

import assert from 'node:assert/strict';
import type {
  EventSpec, MigrationSpec, MigrationStatus, OSTemplateSpec, OSTemplateStatus, PhysicalNodeSpec,
  PhysicalNodeStatus, VirtualClusterSpec, VirtualClusterStatus, VirtualNodeSpec, VirtualNodeStatus,
  VolumeSpec, VolumeStatus,
} from '../../api/types.js';
import { formatPath, validateObject } from '../../api/validation/index.js';
import type { GitSourceSpec, GitSourceStatus } from '../../reconcilers/gitops/sync-status.js';

type DeepRequired<T> = T extends (infer U)[] ? DeepRequired<U>[] : T extends object ? { [K in keyof T]-?: DeepRequired<T[K]> } : T;

const now = '2026-01-02T03:04:05Z';
const cond = [{ type: 'Ready', status: 'True' as const, reason: 'Ok', message: 'fine', lastTransitionTime: now, observedGeneration: 1 }];

const pnSpec: DeepRequired<PhysicalNodeSpec> = {
  address: '198.18.0.11', ssh: { port: 22, user: 'root', identityFile: '/k', hostKey: 'ssh-ed25519 AAAA' },
  capacity: { cores: 4, memoryMiB: 8192 }, maxVMs: 8, hypervisor: 'qemu', storageRoot: '/san', runRoot: '/run/v', sanDevice: '/dev/disk/by-id/virtio-vl-san',
  unschedulable: false, transport: 'ssh',
  fencing: { agent: 'ipmi', testbedDir: '/tmp/tb', host: 'bmc1', user: 'admin', passwordFile: '/etc/vl/bmc1.pw' },
};
const pnStatus: DeepRequired<PhysicalNodeStatus> = {
  conditions: cond, allocated: { cores: 1, memoryMiB: 1, vms: 1 }, hypervisorVersion: '8.2', observedGeneration: 1,
  observed: { cores: 4, memoryMiB: 8192 }, san: { device: '/dev/disk/by-id/virtio-vl-san', sizeBytes: 1073741824 },
};
const ostSpec: DeepRequired<OSTemplateSpec> = {
  image: { path: '/a.qcow2', format: 'qcow2', tarball: '/b.tar' },
  boot: { kernel: '/k', initrd: '/i', cmdline: 'console=ttyS0' }, revision: 1, guestAgent: true,
};
const ostStatus: DeepRequired<OSTemplateStatus> = { conditions: cond, observedGeneration: 1 };
const vcSpec: DeepRequired<VirtualClusterSpec> = {
  nodes: 2, template: 'busybox', node: { vcpus: 1, memoryMiB: 256, diskGiB: 4, swapMiB: 0, bootTimeout: '5m' }, network: { subnet: '10.0.0.0/24' },
  sharedStorage: { sizeGiB: 1, filesystem: 'nfs' }, placement: { strategy: 'Block', mode: 'Strict' }, state: 'Running',
  firstBoot: { script: 'true' }, storageDriver: 'qcow2', highAvailability: 'restart', hypervisor: 'xen',
};
const vcStatus: DeepRequired<VirtualClusterStatus> = {
  phase: 'Running', observedGeneration: 1, conditions: cond,
  nodes: [{ name: 'a-0', physicalNode: 'blade1', ip: '10.0.0.2', phase: 'Running' }], subnet: '10.0.0.0/24',
  placement: { strategy: 'Block', mode: 'Strict' },
};
const vnSpec: DeepRequired<VirtualNodeSpec> = { cluster: 'a', index: 0, physicalNode: 'blade1', vcpus: 1, memoryMiB: 256 };
const vnStatus: DeepRequired<VirtualNodeStatus> = {
  phase: 'Running', ip: '10.0.0.2', host: 'blade1', conditions: cond, observedGeneration: 1, message: 'm', restarts: 0,
  lastFailureTime: now, savedDiskRevision: '1', bootTime: now, restartedFor: '2026-01-02T03:04:05Z', savedSize: { vcpus: 1, memoryMiB: 256 }, runningSize: { vcpus: 1, memoryMiB: 256 },
  savedGuestReady: { reason: 'ConsoleReady', message: 'the guest printed: VIRTUALINUX-READY' },
};
const volSpec: DeepRequired<VolumeSpec> = { role: 'snapshot', cluster: 'a', sizeGiB: 4, driver: 'qcow2', source: 'a-original', virtualNode: 'a-0' };
const volStatus: DeepRequired<VolumeStatus> = {
  phase: 'Ready', path: '/san/x', bytesUsed: 1, message: 'm', templateRevision: 1, format: 'qcow2', configRevision: 'r1', conditions: cond, observedGeneration: 1,
};
const migSpec: DeepRequired<MigrationSpec> = { virtualNode: 'a-0', targetNode: 'blade2' };
const migStatus: DeepRequired<MigrationStatus> = {
  phase: 'Succeeded', downtimeMs: 1, totalMs: 2, sourceNode: 'blade1', message: 'm', startTime: now, completionTime: now,
  progress: { transferredBytes: 1, remainingBytes: 0, totalBytes: 2, dirtyBytesPerSec: 0, throughputBytesPerSec: 3, passes: 1, sampleTime: now },
  conditions: cond, observedGeneration: 1,
};
const evSpec: DeepRequired<EventSpec> = {
  involvedObject: { kind: 'VirtualCluster', name: 'a', namespace: 'default', uid: 'u' }, type: 'Normal', reason: 'Created',
  message: 'm', count: 1, firstTimestamp: now, lastTimestamp: now, source: 'placement',
};

// dir and url together break the CRD's oneOf (not checked here); every field is still known.
const gsSpec: DeepRequired<GitSourceSpec> = {
  dir: '/repo', url: 'ssh://git@198.18.0.11/srv/r.git', ref: 'main', path: 'clusters', prune: true, allowEmpty: false,
  interval: '1m', ssh: { identityFile: '/k', knownHosts: '198.18.0.11 ssh-ed25519 AAAA' }, https: { tokenFile: '/t', username: 'u' },
};
const gsStatus: DeepRequired<GitSourceStatus> = {
  fetchedRevision: 'abc', lastAppliedRevision: 'abc', lastSyncTime: now, appliedCount: 1, prunedCount: 0,
  inventory: [{ kind: 'VirtualCluster', namespace: 'default', name: 'a' }], lastError: '', conditions: cond, observedGeneration: 1,
};
const cases: [string, boolean, unknown, unknown][] = [
  ['PhysicalNode', false, pnSpec, pnStatus],
  ['OSTemplate', false, ostSpec, ostStatus],
  ['VirtualCluster', true, vcSpec, vcStatus],
  ['VirtualNode', true, vnSpec, vnStatus],
  ['Volume', true, volSpec, volStatus],
  ['Migration', true, migSpec, migStatus],
  ['Event', true, evSpec, undefined],
  ['GitSource', true, gsSpec, gsStatus],
];

describe('crds: every field of api/types.ts is in the CRD', () => {
  for (const [kind, namespaced, spec, status] of cases) {
    it(kind, () => {
      const { issues } = validateObject({
        apiVersion: 'virtualinux.org/v1alpha1', kind,
        metadata: { name: 'x', ...(namespaced ? { namespace: 'default' } : {}) },
        spec, ...(status ? { status } : {}),
      });
      const unknown = issues.filter((i) => i.message.startsWith('unknown field') || i.message.startsWith('must be a'));
      assert.deepEqual(unknown.map((i) => `${formatPath(i.path)}: ${i.message}`), []);
    });
  }
});
