// Validation and defaulting of one object against its kind's CRD schema, plus the few rules a
// structural schema cannot say (scope of metadata.namespace, fields required only in some modes).
// Errors come back as issues with a JSON path, never as exceptions: the caller (api/input) adds
// the file, document and line.

import { isDeepStrictEqual } from 'node:util';
import { KINDS, resolveKind } from '../kinds.js';
import { API_VERSION, type ApiObject } from '../types.js';
import type { OpenApiSchema } from './crd-files.js';
import { PATTERN_HINTS } from './metadata-schema.js';
import { validatorFor, type SchemaError } from './schema-validator.js';

export type JsonPath = (string | number)[];

export interface ValidationIssue {
  /** Where in the object, e.g. ['spec', 'placement', 'strategy']. Empty for the whole object. */
  path: JsonPath;
  message: string;
}

export interface ValidationResult {
  /** A defaulted deep copy of the input (the input itself is not changed). */
  object: ApiObject;
  issues: ValidationIssue[];
}

/** `spec.placement.strategy`, `status.conditions[0].type`; keys that are not identifiers are quoted. */
export function formatPath(path: JsonPath): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(p)) out += out ? `.${p}` : p;
    else out += `[${JSON.stringify(p)}]`;
  }
  return out;
}

/**
 * Validates and defaults an object: kind and apiVersion known, the CRD schema (unknown fields
 * rejected), DNS-1123 names, metadata.namespace present exactly for namespaced kinds (unless
 * `allowMissingNamespace`, for callers that fill it in afterwards). With `inPlace`, the defaults
 * are written into `input` itself and it is returned as `object` (for a caller's own fresh copy:
 * one deep copy less).
 */
export function validateObject(input: unknown, opts: { allowMissingNamespace?: boolean; inPlace?: boolean } = {}): ValidationResult {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return {
      object: input as ApiObject,
      issues: [{ path: [], message: `must be an object with apiVersion, kind, metadata and spec, not ${typeName(input)}` }],
    };
  }
  const obj = (opts.inPlace ? input : structuredClone(input)) as ApiObject;
  if (obj.kind === undefined) return { object: obj, issues: [{ path: ['kind'], message: 'is required' }] };
  const info = typeof obj.kind === 'string' ? resolveKind(obj.kind) : undefined;
  if (!info || info.kind !== obj.kind) {
    return {
      object: obj,
      issues: [{ path: ['kind'], message: `unknown kind ${JSON.stringify(obj.kind)}; known kinds: ${KINDS.map((k) => k.kind).join(', ')}` }],
    };
  }
  if (obj.apiVersion !== API_VERSION) {
    const issue = obj.apiVersion === undefined ? 'is required' : `must be ${API_VERSION}`;
    return { object: obj, issues: [{ path: ['apiVersion'], message: issue }] };
  }
  const validate = validatorFor(info.kind);
  const issues: ValidationIssue[] = [];
  if (!validate(obj)) issues.push(...issuesFromAjv(validate.errors ?? []));
  const meta = obj.metadata as ApiObject['metadata'] | undefined;
  if (meta && typeof meta === 'object') {
    if (!info.namespaced && meta.namespace !== undefined) {
      issues.push({ path: ['metadata', 'namespace'], message: `${info.kind} is cluster-scoped: remove metadata.namespace` });
    }
    if (info.namespaced && meta.namespace === undefined && !opts.allowMissingNamespace) {
      issues.push({ path: ['metadata', 'namespace'], message: `is required: ${info.kind} is namespaced` });
    }
  }
  if (issues.length === 0) issues.push(...crossFieldIssues(obj));
  return { object: obj, issues };
}

/** Rules that involve more than one field, which a structural schema cannot express. */
function crossFieldIssues(obj: ApiObject): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  const spec = obj.spec as Record<string, unknown> | undefined;
  if (obj.kind === 'PhysicalNode' && spec) {
    const ssh = spec.ssh as { hostKey?: string } | undefined;
    if ((spec.transport === 'sim') !== (spec.hypervisor === 'sim')) {
      // Simulated hosts (benchmarks only) run only simulated VMs, and simulated VMs only run there.
      out.push({
        path: ['spec', spec.transport === 'sim' ? 'hypervisor' : 'transport'],
        message: 'must be sim when the other of spec.transport and spec.hypervisor is sim (a simulated host, benchmarks only)',
      });
    }
    if (spec.transport !== 'local' && spec.transport !== 'sim' && !ssh?.hostKey) {
      out.push({
        path: ['spec', 'ssh', 'hostKey'],
        message: 'is required when spec.transport is ssh: pin the host key (ssh-keyscan -t ed25519 ADDRESS)',
      });
    }
  }
  if (obj.kind === 'VirtualCluster' && spec) {
    const subnet = (spec.network as { subnet?: string } | undefined)?.subnet;
    if (subnet) {
      const [addr, bits] = subnet.split('/');
      const n = addr.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
      const hostBits = 32 - Number(bits);
      if (hostBits > 0 && n % 2 ** hostBits !== 0) {
        const base = n - (n % 2 ** hostBits);
        const baseText = [24, 16, 8, 0].map((s) => Math.floor(base / 2 ** s) % 256).join('.');
        out.push({ path: ['spec', 'network', 'subnet'], message: `has host bits set: did you mean ${baseText}/${bits}?` });
      }
    }
  }
  return out;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

const ARTICLE: Record<string, string> = {
  object: 'an object', array: 'an array', string: 'a string', integer: 'an integer', number: 'a number', boolean: 'a boolean',
};

function pointerToPath(pointer: string): JsonPath {
  if (!pointer) return [];
  return pointer.slice(1).split('/').map((s) => {
    const k = s.replace(/~1/g, '/').replace(/~0/g, '~');
    return /^(0|[1-9][0-9]*)$/.test(k) ? Number(k) : k;
  });
}

/** Turns ajv's errors into one issue per problem, with messages a user can act on. */
export function issuesFromAjv(errors: SchemaError[]): ValidationIssue[] {
  // Branch errors under a oneOf are noise: the oneOf error itself says what to do.
  const oneOfPaths = errors.filter((e) => e.keyword === 'oneOf').map((e) => `${e.schemaPath}/`);
  const out: ValidationIssue[] = [];
  for (const e of errors) {
    if (oneOfPaths.some((p) => e.schemaPath.startsWith(p))) continue;
    const path = pointerToPath(e.instancePath);
    if (e.propertyName !== undefined) path.push(e.propertyName); // a bad key of labels/annotations
    const issue = issueFromAjv(e, path);
    if (issue && !out.some((o) => isDeepStrictEqual(o, issue))) out.push(issue);
  }
  return out;
}

function issueFromAjv(e: SchemaError, path: JsonPath): ValidationIssue | undefined {
  const p = e.params as Record<string, unknown>;
  const parent = e.parentSchema as OpenApiSchema | undefined;
  switch (e.keyword) {
    case 'required':
      return { path: [...path, String(p.missingProperty)], message: 'is required' };
    case 'additionalProperties': {
      const known = Object.keys(parent?.properties ?? {});
      return {
        path: [...path, String(p.additionalProperty)],
        message: known.length ? `unknown field (known fields: ${known.join(', ')})` : 'unknown field',
      };
    }
    case 'type': {
      const want = String(p.type).split(',').map((t) => ARTICLE[t] ?? t).join(' or ');
      return { path, message: `must be ${want}, not ${typeName(e.data)}` };
    }
    case 'enum':
      return { path, message: `must be one of ${(p.allowedValues as unknown[]).map(String).join(', ')}` };
    case 'pattern': {
      const hint = PATTERN_HINTS[String(p.pattern)];
      return { path, message: `${JSON.stringify(e.data)} is not ${hint ?? `matching the pattern ${String(p.pattern)}`}` };
    }
    case 'propertyNames':
      return undefined; // reported by the failing keyword inside propertyNames, at the key's path
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return { path, message: `must be ${String(p.comparison)} ${String(p.limit)}` };
    case 'minLength':
      return { path, message: Number(p.limit) === 1 ? 'must not be empty' : `must be at least ${String(p.limit)} characters` };
    case 'maxLength':
      return { path, message: `must be at most ${String(p.limit)} characters` };
    case 'format':
      return { path, message: `${JSON.stringify(e.data)} is not ${p.format === 'date-time' ? 'an RFC 3339 date-time' : `a valid ${String(p.format)}`}` };
    case 'oneOf': {
      const branches = (e.schema as OpenApiSchema[]).map((b) => (b.required ?? []).join(' and '));
      return { path, message: `set exactly one of ${branches.join(', ')}` };
    }
    default:
      return { path, message: e.message ?? `fails ${e.keyword}` };
  }
}
