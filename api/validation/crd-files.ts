// Reads the CRDs in crds/ (the single source of schemas, defaults and `vcctl explain` text).
// Files are read and parsed on first use of a kind only, so commands that never validate (get,
// version) never load the YAML parser for them.

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Yaml from 'yaml';
import { kindInfo, type KindInfo } from '../kinds.js';

/** An OpenAPI v3 schema node as CRDs write it (a structural subset of JSON Schema). */
export interface OpenApiSchema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, OpenApiSchema>;
  additionalProperties?: boolean | OpenApiSchema;
  items?: OpenApiSchema;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  oneOf?: OpenApiSchema[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  [key: string]: unknown;
}

export interface CrdInfo {
  kind: KindInfo;
  group: string;
  version: string;
  scope: 'Namespaced' | 'Cluster';
  schema: OpenApiSchema;
  file: string;
}

let crdDirCache: string | undefined;

/**
 * The crds/ directory: VIRTUALINUX_CRDS_DIR when set, else the nearest `crds/` above this module
 * (works from the sources under tsx and from the build in dist/).
 */
export function crdDir(): string {
  if (crdDirCache) return crdDirCache;
  const fromEnv = process.env.VIRTUALINUX_CRDS_DIR;
  if (fromEnv) return (crdDirCache = fromEnv);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'crds', 'virtualcluster.yaml'))) return (crdDirCache = join(dir, 'crds'));
    const up = dirname(dir);
    if (up === dir) {
      throw new Error('cannot find the crds/ directory of the installation; set VIRTUALINUX_CRDS_DIR to it');
    }
    dir = up;
  }
}

const cache = new Map<string, CrdInfo>();

/** The CRD of a kind (kind, plural or short name). Throws when the file is missing or malformed. */
export function loadCrd(kind: string): CrdInfo {
  const info = kindInfo(kind);
  const hit = cache.get(info.kind);
  if (hit) return hit;
  const file = join(crdDir(), info.crdFile);
  let doc: {
    spec?: {
      group?: string;
      scope?: string;
      names?: { kind?: string };
      versions?: { name: string; storage?: boolean; schema?: { openAPIV3Schema?: OpenApiSchema } }[];
    };
  };
  try {
    // The yaml package is required here, on first use: `vcctl apply` in the bundle validates with
    // precompiled validators and never parses a CRD, so it does not load the package at all.
    const { parse } = createRequire(import.meta.url)('yaml') as typeof Yaml;
    doc = parse(readFileSync(file, 'utf8')) as typeof doc;
  } catch (err) {
    throw new Error(`cannot read the CRD of ${info.kind} at ${file}: reinstall or fix the file`, { cause: err });
  }
  const version = doc.spec?.versions?.find((v) => v.storage) ?? doc.spec?.versions?.[0];
  const schema = version?.schema?.openAPIV3Schema;
  if (doc.spec?.names?.kind !== info.kind || !version || !schema) {
    throw new Error(`${file} is not the CRD of ${info.kind} (spec.names.kind and an openAPIV3Schema are needed)`);
  }
  const crd: CrdInfo = {
    kind: info,
    group: doc.spec.group ?? '',
    version: version.name,
    scope: doc.spec.scope === 'Cluster' ? 'Cluster' : 'Namespaced',
    schema,
    file,
  };
  cache.set(info.kind, crd);
  return crd;
}
