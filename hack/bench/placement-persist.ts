// The persisting half of hack/bench-placement: the bindings of a Block/Strict placement written
// the way the placement controller writes them - one Store batch per VirtualCluster updating its
// VirtualNodes (spec.physicalNode) and the allocation of every PhysicalNode it uses, each with
// its resourceVersion - against a bare etcd3 loop of the same transactions (compare every key's
// mod revision, put the same bytes) on the same etcd, in the same run.

import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { API_VERSION, type ApiObject, type PhysicalNode, type VirtualNode } from '../../api/types.js';
import type { BatchOp } from '../../api/store/types.js';
import { EtcdStore } from '../../api/store/etcd-store.js';
import { startEtcd } from '../lib/etcd-harness.js';
import { placeClusters, type ClusterRequest, type NodeCapacity } from '../../reconcilers/placement/engine.js';
import { makeClusters, makeNodes } from './placement-workload.js';
import { CLUSTER_LABEL } from '../../api/labels.js';

function pnObject(n: NodeCapacity): PhysicalNode {
  return {
    apiVersion: API_VERSION, kind: 'PhysicalNode', metadata: { name: n.name },
    spec: {
      address: '198.18.0.1', ssh: { port: 22, user: 'root', hostKey: 'ssh-ed25519 AAAA' },
      capacity: { cores: n.cores, memoryMiB: n.memoryMiB }, ...(n.maxVMs ? { maxVMs: n.maxVMs } : {}),
      hypervisor: 'qemu', storageRoot: '/san',
    },
    status: { allocated: { cores: 0, memoryMiB: 0, vms: 0 } },
  };
}

function vnObject(c: ClusterRequest, i: number): VirtualNode {
  return {
    apiVersion: API_VERSION, kind: 'VirtualNode',
    metadata: { name: `${c.name}-${i}`, namespace: c.namespace, labels: { [CLUSTER_LABEL]: c.name } },
    spec: { cluster: c.name, index: i, vcpus: c.vcpus, memoryMiB: c.memoryMiB },
  };
}

const SETUP_CHUNK = 1000;

/** `then` runs on the store as the bindings left it (every VM bound), before etcd stops. */
export async function persistBench(
  nodeCount: number, vmCount: number, then?: (store: EtcdStore) => Promise<void>,
): Promise<void> {
  console.log(`persist: bindings of ${vmCount} VMs on ${nodeCount} nodes (Block/Strict), one transaction per VC`);
  const etcd = await startEtcd({ maxTxnOps: 20_000 });
  const store = await EtcdStore.connect({ endpoints: etcd.endpoints, prefix: `/bench-${randomBytes(3).toString('hex')}` });
  try {
    const nodes = makeNodes(nodeCount);
    const clusters = makeClusters(vmCount, 'Block', 'Strict');
    const placed = placeClusters(nodes, clusters).clusters;

    // Setup (not timed): the objects as the VirtualCluster controller would have created them.
    const pns = new Map<string, ApiObject>();
    const vns = new Map<string, ApiObject>();
    const creates: ApiObject[] = [...nodes.map(pnObject), ...clusters.flatMap((c) => Array.from({ length: c.vms }, (_, i) => vnObject(c, i)))];
    for (let i = 0; i < creates.length; i += SETUP_CHUNK) {
      const out = await store.batch(creates.slice(i, i + SETUP_CHUNK).map((object) => ({ op: 'create' as const, object })));
      for (const o of out) (o.kind === 'PhysicalNode' ? pns : vns).set(o.metadata.name, o);
    }
    // The bare side's keys: the same bytes under another prefix, with their mod revisions.
    const bareRev = new Map<string, string>();
    const bareKey = (o: ApiObject) => `/bare/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    const all = [...pns.values(), ...vns.values()];
    for (let i = 0; i < all.length; i += SETUP_CHUNK) {
      const chunk = all.slice(i, i + SETUP_CHUNK);
      for (const prefix of ['', '/rw']) {
        const res = await store.client.kv.txn({
          success: chunk.map((o) => ({ request_put: { key: Buffer.from(prefix + bareKey(o)), value: Buffer.from(JSON.stringify(o)) } })),
        });
        for (const o of chunk) bareRev.set(prefix + bareKey(o), res.header.revision);
      }
    }

    // The same transactions on both sides, built from the placement.
    const txns = placed.filter((p) => p.schedulable).map((p) => {
      const c = clusters.find((x) => x.name === p.name)!;
      const perNode = new Map<string, number>();
      for (const n of p.nodes) perNode.set(n, (perNode.get(n) ?? 0) + 1);
      return { c, p, perNode };
    });

    const t0 = performance.now();
    let storeWrites = 0;
    for (const { c, p, perNode } of txns) {
      const ops: BatchOp[] = p.nodes.map((node, i) => {
        const vn = vns.get(`${c.name}-${i}`) as VirtualNode;
        return { op: 'update', object: { ...vn, spec: { ...vn.spec!, physicalNode: node } } };
      });
      for (const [node, k] of perNode) {
        const pn = pns.get(node) as PhysicalNode;
        const a = pn.status!.allocated!;
        ops.push({ op: 'updateStatus', object: { ...pn, status: { ...pn.status, allocated: { cores: a.cores + k * c.vcpus, memoryMiB: a.memoryMiB + k * c.memoryMiB, vms: a.vms + k } } } });
      }
      const out = await store.batch(ops);
      for (const o of out) if (o.kind === 'PhysicalNode') pns.set(o.metadata.name, o);
      storeWrites += p.nodes.length;
    }
    const storeMs = performance.now() - t0;

    /**
     * The bare loop: per VC one transaction comparing every key's mod revision and putting the
     * same bytes. With `readFirst`, each transaction is preceded by a read of its keys, as the
     * Store's batch does (it must merge with what is stored): the cost of that design, apart.
     */
    const bareLoop = async (prefix: string, readFirst: boolean): Promise<{ ms: number; writes: number }> => {
      const alloc = new Map<string, { cores: number; memoryMiB: number; vms: number }>();
      const t = performance.now();
      let writes = 0;
      for (const { c, p, perNode } of txns) {
        const keys: string[] = [];
        const values: string[] = [];
        p.nodes.forEach((node, i) => {
          const vn = vns.get(`${c.name}-${i}`) as VirtualNode;
          keys.push(prefix + bareKey(vn));
          values.push(JSON.stringify({ ...vn, spec: { ...vn.spec!, physicalNode: node } }));
        });
        for (const [node, k] of perNode) {
          const pn = pns.get(node) as PhysicalNode;
          const a = alloc.get(node) ?? { cores: 0, memoryMiB: 0, vms: 0 };
          const next = { cores: a.cores + k * c.vcpus, memoryMiB: a.memoryMiB + k * c.memoryMiB, vms: a.vms + k };
          alloc.set(node, next);
          keys.push(prefix + bareKey(pn));
          values.push(JSON.stringify({ ...pn, status: { ...pn.status, allocated: next } }));
        }
        if (readFirst) await store.client.kv.txn({ success: keys.map((key) => ({ request_range: { key: Buffer.from(key) } })) });
        const res = await store.client.kv.txn({
          compare: keys.map((key) => ({ key: Buffer.from(key), target: 'Mod' as const, result: 'Equal' as const, mod_revision: bareRev.get(key)! })),
          success: keys.map((key, i) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(values[i]!) } })),
        });
        if (!res.succeeded) throw new Error('bare transaction failed its compare: the benchmark is broken');
        for (const k of keys) bareRev.set(k, res.header.revision);
        writes += p.nodes.length;
      }
      return { ms: performance.now() - t, writes };
    };
    const bare = await bareLoop('', false);
    const bareMs = bare.ms;
    const bareWrites = bare.writes;
    const readWrite = await bareLoop('/rw', true);

    const storeRate = storeWrites / (storeMs / 1000);
    const bareRate = bareWrites / (bareMs / 1000);
    console.log(`  Store batch:      ${storeRate.toFixed(0).padStart(7)} bindings/s (${storeWrites} in ${txns.length} transactions, ${(storeMs / 1000).toFixed(2)} s)`);
    console.log(`  baseline, bare etcd3 txn loop: ${bareRate.toFixed(0).padStart(7)} bindings/s (${bareWrites} in ${txns.length} transactions, ${(bareMs / 1000).toFixed(2)} s)`);
    const ratio = storeRate / bareRate;
    console.log(`  ratio ${ratio.toFixed(2)} (target >= 0.5: ${ratio >= 0.5 ? 'met' : 'MISSED'})`);
    const rwRate = readWrite.writes / (readWrite.ms / 1000);
    console.log(`  for reference, bare read-then-write loop (the Store's two round trips): ${rwRate.toFixed(0)} bindings/s; Store / that = ${(storeRate / rwRate).toFixed(2)}`);
    await then?.(store);
  } finally {
    await store.close();
    await etcd.stop();
  }
}
