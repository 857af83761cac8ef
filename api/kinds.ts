// The registry of kinds: names, plurals, short names and scope. Every part of the system that
// turns a user's word ("vc", "virtualclusters", "VirtualCluster") into a kind uses resolveKind.

export type KindName =
  | 'PhysicalNode' | 'OSTemplate' | 'VirtualCluster' | 'VirtualNode' | 'Volume' | 'Migration'
  | 'Event' | 'GitSource';

export interface KindInfo {
  kind: KindName;
  plural: string;
  singular: string;
  short: string[];
  namespaced: boolean;
  /** The CRD file in crds/ that holds this kind's schema. */
  crdFile: string;
}

export const KINDS: readonly KindInfo[] = [
  { kind: 'PhysicalNode', plural: 'physicalnodes', singular: 'physicalnode', short: ['pn'], namespaced: false, crdFile: 'physicalnode.yaml' },
  { kind: 'OSTemplate', plural: 'ostemplates', singular: 'ostemplate', short: ['ost'], namespaced: false, crdFile: 'ostemplate.yaml' },
  { kind: 'VirtualCluster', plural: 'virtualclusters', singular: 'virtualcluster', short: ['vc'], namespaced: true, crdFile: 'virtualcluster.yaml' },
  { kind: 'VirtualNode', plural: 'virtualnodes', singular: 'virtualnode', short: ['vn'], namespaced: true, crdFile: 'virtualnode.yaml' },
  { kind: 'Volume', plural: 'volumes', singular: 'volume', short: ['vol'], namespaced: true, crdFile: 'volume.yaml' },
  { kind: 'Migration', plural: 'migrations', singular: 'migration', short: ['mig'], namespaced: true, crdFile: 'migration.yaml' },
  { kind: 'Event', plural: 'events', singular: 'event', short: ['ev'], namespaced: true, crdFile: 'event.yaml' },
  { kind: 'GitSource', plural: 'gitsources', singular: 'gitsource', short: ['gs'], namespaced: true, crdFile: 'gitsource.yaml' },
];

const byWord = new Map<string, KindInfo>();
for (const k of KINDS) {
  for (const w of [k.kind.toLowerCase(), k.plural, k.singular, ...k.short]) byWord.set(w, k);
}

/** Resolves a kind, plural or short name (case-insensitive). Undefined when unknown. */
export function resolveKind(word: string): KindInfo | undefined {
  return byWord.get(word.toLowerCase());
}

export function kindInfo(kind: string): KindInfo {
  const k = resolveKind(kind);
  if (!k) throw new Error(`unknown kind "${kind}"; known kinds: ${KINDS.map((x) => x.kind).join(', ')}`);
  return k;
}

export const DEFAULT_NAMESPACE = 'default';
