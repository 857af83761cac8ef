// Names derived from API objects, said once.

/** The hypervisor domain of a VirtualNode: `<namespace>.<virtualnode>` (unique per cluster of hosts). */
export function domainName(namespace: string | undefined, virtualNode: string): string {
  return `${namespace ?? 'default'}.${virtualNode}`;
}

/** domainName of a VirtualNode object. */
export function domainNameOf(vn: { metadata: { name: string; namespace?: string } }): string {
  return domainName(vn.metadata.namespace, vn.metadata.name);
}
