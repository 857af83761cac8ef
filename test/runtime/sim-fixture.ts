// One VC of one VM bound to a Ready sim node, in a store, with the runtime controller over a cache
// read from that store (as an informer would have it: `refresh` reads it again): what the
// runtime's sim tests reconcile.

import { setCondition } from '../../api/conditions.js';
import type { ObjectRef, Store } from '../../api/store/types.js';
import type { ApiObject, PhysicalNode, VCState, VirtualCluster, VirtualNode } from '../../api/types.js';
import { silentLogger } from '../../controllers/log.js';
import type { CacheReader, ControllerSpec, ReconcileContext } from '../../controllers/types.js';
import { SimWorld } from '../../drivers/transport/sim-host.js';
import { SimTransport } from '../../drivers/transport/sim-transport.js';
import { runtimeController } from '../../reconcilers/runtime/controller.js';
import { physicalNode, virtualCluster } from '../placement/fixtures.js';

/** A cache over `objects` (read as they are at each call, as an informer's would be). */
export function objectsCache(objects: readonly ApiObject[]): CacheReader {
  return {
    get: <T extends ApiObject>(r: ObjectRef) => objects.find((o) => o.kind === r.kind && o.metadata.name === r.name && (r.namespace === undefined || o.metadata.namespace === r.namespace)) as T | undefined,
    list: <T extends ApiObject>(k: string) => objects.filter((o) => o.kind === k) as T[],
  };
}

/** A reconcile context over objectsCache(objects), no store, each Event pushed to `events` as "Reason: message". */
export function objectsContext(objects: readonly ApiObject[], events: string[]): ReconcileContext {
  return {
    store: undefined as never,
    cache: objectsCache(objects),
    events: { record: (_o, _t, reason, message) => void events.push(`${reason}: ${message}`) },
    log: silentLogger(),
    signal: new AbortController().signal,
  };
}

export interface SimRuntime {
  spec: ControllerSpec;
  ctx: ReconcileContext;
  cache: CacheReader;
  key: ObjectRef;
  /** Reads the cache again from the store. */
  refresh(): Promise<void>;
}

export async function simRuntime(store: Store, state: VCState = 'Running'): Promise<SimRuntime> {
  const pn0 = physicalNode('n1', 8, 8192);
  const pn = await store.create<PhysicalNode>({ ...pn0, spec: { ...pn0.spec!, hypervisor: 'sim', transport: 'sim', storageRoot: '/san' } });
  await store.updateStatus<PhysicalNode>({ ...pn, status: { conditions: setCondition(undefined, { type: 'Ready', status: 'True', reason: 'Probed', message: '' }, 0) } });
  await store.create<VirtualCluster>(virtualCluster('vc', 1, 1, 128, 'Block', 'Strict', state));
  await store.create<VirtualNode>({ apiVersion: 'virtualinux.org/v1alpha1', kind: 'VirtualNode', metadata: { name: 'vc-0', namespace: 'default', labels: { 'virtualinux.org/cluster': 'vc' } },
    spec: { cluster: 'vc', index: 0, physicalNode: 'n1', vcpus: 1, memoryMiB: 128 } } as VirtualNode);
  const objects: ApiObject[] = [];
  const refresh = async () => {
    objects.length = 0;
    for (const kind of ['PhysicalNode', 'VirtualCluster', 'VirtualNode']) objects.push(...(await store.list(kind)).items);
  };
  await refresh();
  const cache = objectsCache(objects);
  const world = new SimWorld({ startMs: 0 });
  const spec = runtimeController(cache, { transports: { get: (p: PhysicalNode) => new SimTransport(world.host(p.metadata.name, { cores: 8, memoryMiB: 8192, storageRoot: '/san' })) } });
  const ctx: ReconcileContext = { store, cache, events: { record() {} }, log: silentLogger(), signal: new AbortController().signal };
  return { spec, ctx, cache, key: { kind: 'VirtualNode', namespace: 'default', name: 'vc-0' }, refresh };
}
