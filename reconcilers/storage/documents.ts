// The documents the storage controller writes, as pure functions of the VirtualCluster (and its
// OSTemplate and Volume objects): a node's first-boot configuration input (config-disk.ts turns it
// into the config volume), the VC's static description `vc.json` on the storage root (stage 5),
// and the template image as a storage driver takes it.

import type { OSTemplate, VirtualCluster, Volume } from '../../api/types.js';
import type { TemplateSource } from '../../drivers/storage/types.js';
import { clusterAddresses, gatewayAddress } from '../network/addresses.js';
import type { NodeConfigInput } from './config-disk.js';
import { driverOf } from './plan.js';

/** The VC's subnet: spec.network.subnet, else the one the network controller allocated. */
export function subnetOf(vc: VirtualCluster): string | undefined {
  return vc.spec?.network?.subnet ?? vc.status?.subnet;
}

/** What node `index`'s configuration volume holds. Needs the VC's subnet (subnetOf). */
export function nodeConfig(vc: VirtualCluster, index: number): NodeConfigInput {
  const subnet = subnetOf(vc)!;
  const peers = clusterAddresses(subnet, vc.spec!.nodes);
  const shared = vc.spec!.sharedStorage;
  return {
    vcName: vc.metadata.name,
    namespace: vc.metadata.namespace ?? 'default',
    nodeName: `${vc.metadata.name}-${index}`,
    index,
    ip: peers[index]!,
    subnet,
    gateway: gatewayAddress(subnet),
    peers,
    hasShared: !!shared && shared.filesystem !== 'none',
    // nfs (ganesha) and ocfs2 (the node's OCFS2 mount, re-exported by its kernel NFS server) alike
    sharedNfs: shared?.filesystem === 'nfs' || shared?.filesystem === 'ocfs2',
    ...(vc.spec!.firstBoot?.script !== undefined ? { firstBootScript: vc.spec!.firstBoot.script } : {}),
  };
}

/** Stage 5: the VC's static information (`vc.json`), on the storage root beside its volumes. */
export function vcConfigDocument(vc: VirtualCluster, template: OSTemplate, volumes: readonly Volume[]): string {
  const path = (n: string): string | undefined => volumes.find((v) => v.metadata.name === n)?.status?.path;
  const subnet = subnetOf(vc);
  const ips = subnet ? clusterAddresses(subnet, vc.spec!.nodes) : [];
  const doc = {
    apiVersion: 'virtualinux.org/v1alpha1',
    kind: 'VirtualClusterStorage',
    name: vc.metadata.name,
    namespace: vc.metadata.namespace,
    uid: vc.metadata.uid,
    template: { name: template.metadata.name, revision: template.spec!.revision },
    driver: driverOf(vc),
    subnet: subnet ?? null,
    gateway: subnet ? gatewayAddress(subnet) : null,
    node: vc.spec!.node,
    original: path(`${vc.metadata.name}-original`) ?? null,
    shared: vc.spec!.sharedStorage ? { ...vc.spec!.sharedStorage, path: path(`${vc.metadata.name}-shared`) ?? null } : null,
    nodes: Array.from({ length: vc.spec!.nodes }, (_, i) => {
      const vn = `${vc.metadata.name}-${i}`;
      return { name: vn, index: i, ip: ips[i] ?? null, disk: path(`${vn}-disk`) ?? null, swap: path(`${vn}-swap`) ?? null, config: path(`${vn}-config`) ?? null };
    }),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** The OSTemplate's image as the storage drivers take it. */
export function templateSource(t: OSTemplate): TemplateSource {
  const img = t.spec!.image;
  return {
    ...(img.path ? { path: img.path } : {}),
    ...(img.format ? { format: img.format } : {}),
    ...(img.tarball ? { tarball: img.tarball } : {}),
  };
}
