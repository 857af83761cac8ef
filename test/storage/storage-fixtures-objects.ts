// Objects for the storage controller tests: a PhysicalNode reached through the local transport
// whose storage root is a temporary directory, an OSTemplate and a VirtualCluster.

import { API_VERSION, type OSTemplate, type PhysicalNode, type VirtualCluster } from '../../api/types.js';

export function storageNode(name: string, storageRoot: string): PhysicalNode {
  return {
    apiVersion: API_VERSION,
    kind: 'PhysicalNode',
    metadata: { name },
    spec: {
      address: '127.0.0.1', ssh: { port: 22, user: 'root', hostKey: 'ssh-ed25519 AAAA-unused-local' },
      capacity: { cores: 2, memoryMiB: 4096 }, hypervisor: 'qemu', storageRoot, transport: 'local',
    },
    status: { conditions: [{ type: 'Ready', status: 'True', reason: 'Probed', message: '', lastTransitionTime: new Date().toISOString() }] },
  };
}

export function osTemplate(name: string, path: string, revision = 1, format: 'qcow2' | 'raw' = 'qcow2'): OSTemplate {
  return { apiVersion: API_VERSION, kind: 'OSTemplate', metadata: { name }, spec: { image: { path, format }, revision } };
}

export function storageVc(name: string, nodes: number, template: string, extra: Partial<VirtualCluster['spec']> = {}): VirtualCluster {
  return {
    apiVersion: API_VERSION,
    kind: 'VirtualCluster',
    metadata: { name, namespace: 'default' },
    spec: {
      nodes, template,
      node: { vcpus: 1, memoryMiB: 128, diskGiB: 1, swapMiB: 8 },
      network: { subnet: '10.10.1.0/24' },
      sharedStorage: { sizeGiB: 1, filesystem: 'nfs' },
      placement: { strategy: 'Block', mode: 'Strict' },
      state: 'Running',
      firstBoot: { script: 'echo hello from firstboot' },
      ...extra,
    },
  };
}
