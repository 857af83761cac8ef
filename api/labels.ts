// Labels said once. Every object a VirtualCluster makes (its VirtualNodes, Volumes, Migrations)
// carries CLUSTER_LABEL with the VC's name, so "the objects of VC X" is one label selector.

export const CLUSTER_LABEL = 'virtualinux.org/cluster';

/** The label selector of the objects of VirtualCluster `name`. */
export function clusterSelector(name: string): string {
  return `${CLUSTER_LABEL}=${name}`;
}
