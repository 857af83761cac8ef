// Objects for placement tests: PhysicalNodes (Ready or not), VirtualClusters, VirtualNodes.

import { API_VERSION, type PhysicalNode, type VirtualCluster, type VirtualNode } from '../../api/types.js';
import type { Store } from '../../api/store/types.js';
import type { PlacementMode, PlacementStrategy, VCState } from '../../api/types.js';

export function physicalNode(
  name: string, cores: number, memoryMiB: number,
  o: { ready?: boolean; unschedulable?: boolean; maxVMs?: number } = {},
): PhysicalNode {
  return {
    apiVersion: API_VERSION,
    kind: 'PhysicalNode',
    metadata: { name },
    spec: {
      address: '198.18.0.1',
      ssh: { port: 22, user: 'root', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOZ0' },
      capacity: { cores, memoryMiB },
      ...(o.maxVMs !== undefined ? { maxVMs: o.maxVMs } : {}),
      hypervisor: 'qemu',
      storageRoot: '/san',
      unschedulable: o.unschedulable ?? false,
    },
    status: {
      conditions: [{
        type: 'Ready', status: o.ready === false ? 'False' : 'True', reason: o.ready === false ? 'Unreachable' : 'Probed',
        message: '', lastTransitionTime: new Date(0).toISOString(), observedGeneration: 1,
      }],
    },
  };
}

export function virtualCluster(
  name: string, nodes: number, vcpus: number, memoryMiB: number,
  strategy: PlacementStrategy = 'Block', mode: PlacementMode = 'Strict', state: VCState = 'Running',
  namespace = 'default',
): VirtualCluster {
  return {
    apiVersion: API_VERSION,
    kind: 'VirtualCluster',
    metadata: { name, namespace },
    spec: {
      nodes, template: 'busybox',
      node: { vcpus, memoryMiB, diskGiB: 1, swapMiB: 0 },
      placement: { strategy, mode },
      state,
    },
  };
}

export function virtualNode(vc: VirtualCluster, index: number): VirtualNode {
  return {
    apiVersion: API_VERSION,
    kind: 'VirtualNode',
    metadata: {
      name: `${vc.metadata.name}-${index}`,
      namespace: vc.metadata.namespace,
      labels: { 'virtualinux.org/cluster': vc.metadata.name },
    },
    spec: { cluster: vc.metadata.name, index, vcpus: vc.spec!.node.vcpus, memoryMiB: vc.spec!.node.memoryMiB },
  };
}

/** Polls `f` until it returns a value other than undefined, or fails after timeoutMs. */
export async function eventually<T>(f: () => Promise<T | undefined>, timeoutMs = 20_000, what = 'condition'): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`, { cause: last });
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Per PhysicalNode: what the VirtualNodes bound to it take, from the store. */
export async function boundUsage(store: Store): Promise<Map<string, { cores: number; memoryMiB: number; vms: number }>> {
  const out = new Map<string, { cores: number; memoryMiB: number; vms: number }>();
  for (const vn of (await store.list<VirtualNode>('VirtualNode')).items) {
    const n = vn.spec?.physicalNode;
    if (!n) continue;
    const u = out.get(n) ?? { cores: 0, memoryMiB: 0, vms: 0 };
    u.cores += vn.spec!.vcpus;
    u.memoryMiB += vn.spec!.memoryMiB;
    u.vms += 1;
    out.set(n, u);
  }
  return out;
}
