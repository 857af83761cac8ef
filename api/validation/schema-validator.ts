// Compiles each kind's CRD schema (crds/<kind>.yaml) with ajv, once per process and only when
// the kind is first validated (ajv compilation costs milliseconds per kind; the CLI stays fast).
//
// What the compiled validator adds to the CRD text, and why:
// - `metadata` gets METADATA_SCHEMA (CRDs leave it as a bare object, as in Kubernetes).
// - Every object schema that lists `properties` (and does not set additionalProperties or
//   x-kubernetes-preserve-unknown-fields) rejects unknown fields: Kubernetes would prune them
//   silently; our contract is that unknown fields are errors.
// - `default` values are applied (useDefaults), nested ones too (a `default: {}` parent first).

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type AjvModule from 'ajv';
import type { _, ErrorObject, ValidateFunction } from 'ajv';
import type standaloneModule from 'ajv/dist/standalone/index.js';
import { KINDS, kindInfo } from '../kinds.js';
import { crdDir, loadCrd, type OpenApiSchema } from './crd-files.js';
import { FORMATS } from './formats.js';
import { METADATA_SCHEMA } from './metadata-schema.js';
import { PRECOMPILED } from './precompiled.js';

type AjvInstance = InstanceType<typeof AjvModule.default>;

// ajv's compiler is loaded on the first compilation only (a synchronous require of the CommonJS
// package): the vcctl bundle's precompiled validators (precompiled.ts) need none of it, and
// loading it was a noticeable part of a fresh `vcctl apply`'s start-up.
const requireCjs = createRequire(import.meta.url);
let ajvPackage: { default: typeof AjvModule.default; _: typeof _ } | undefined;
function ajvLib(): { default: typeof AjvModule.default; _: typeof _ } {
  ajvPackage ??= requireCjs('ajv') as { default: typeof AjvModule.default; _: typeof _ };
  return ajvPackage;
}

let ajv: AjvInstance | undefined;
function getAjv(): AjvInstance {
  ajv ??= makeAjv(false);
  return ajv;
}

/**
 * The ajv every kind is compiled with. At run time the CRD schemas are not checked against
 * JSON Schema's meta-schema (`validateSchema: false`): compiling the meta-schema was a third of
 * a fresh `vcctl apply`'s validation time, and the CRDs ship with the program;
 * test/api/crds.test.ts compiles every kind with the check on (checkSchemas).
 */
function makeAjv(validateSchema: boolean, formatsCode?: ReturnType<typeof _>): AjvInstance {
  const a = new (ajvLib().default)({
    ...(formatsCode ? { code: { source: true, esm: true, formats: formatsCode } } : {}),
    validateSchema,
    allErrors: true,
    useDefaults: true,
    verbose: true,
    strict: true,
    strictTypes: false,
    strictRequired: false, // oneOf branches name fields of the parent (OSTemplate image)
    formats: FORMATS,
  });
  // Kubernetes schema extensions: annotations for other tools, no effect on validation here.
  for (const k of ['x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-preserve-unknown-fields',
    'x-kubernetes-int-or-string', 'x-kubernetes-embedded-resource']) a.addKeyword(k);
  return a;
}

/** Compiles every kind's schema with the meta-schema check on; throws at the first invalid one. */
export function checkSchemas(kinds: string[]): void {
  const strict = makeAjv(true);
  for (const k of kinds) strict.compile(effectiveSchema(k));
}

/** The schema a kind is validated against: the CRD's, with the additions described above. */
export function effectiveSchema(kind: string): OpenApiSchema {
  const crd = loadCrd(kind);
  const schema = closeObjects(structuredClone(crd.schema));
  if (schema.properties) schema.properties.metadata = closeObjects(structuredClone(METADATA_SCHEMA));
  return schema;
}

function closeObjects(s: OpenApiSchema): OpenApiSchema {
  if (s.properties) {
    for (const p of Object.values(s.properties)) closeObjects(p);
    if (s.additionalProperties === undefined && !s['x-kubernetes-preserve-unknown-fields']) {
      s.additionalProperties = false;
    }
  }
  if (s.items) closeObjects(s.items);
  if (s.additionalProperties && typeof s.additionalProperties === 'object') closeObjects(s.additionalProperties);
  return s;
}

const compiled = new Map<string, ValidateFunction>();

/** The compiled validator of a kind (as registered in api/kinds.ts). */
export function validatorFor(kind: string): ValidateFunction {
  let v = compiled.get(kind);
  if (!v) {
    const info = kindInfo(kind);
    v = precompiledFor(info.kind, () => readFileSync(join(crdDir(), info.crdFile))) ?? getAjv().compile(effectiveSchema(kind));
    compiled.set(kind, v);
  }
  return v;
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/**
 * The build-time validator of a kind (precompiled.ts), if there is one and the CRD text it was
 * generated from is the one this process would compile (`crdText` reads it); else undefined.
 */
export function precompiledFor(kind: string, crdText: () => Buffer | string): ValidateFunction | undefined {
  const p = PRECOMPILED[kind];
  if (!p) return undefined;
  let text: Buffer | string;
  try {
    text = crdText();
  } catch {
    return undefined; // compiling reads the file again and reports what is wrong with it
  }
  return sha256(text) === p.crdSha256 ? p.validate : undefined;
}

/**
 * ES module source defining PRECOMPILED (see precompiled.ts) for every kind, from the CRD files
 * as they are now: ajv standalone code of the same schemas and options as validatorFor compiles.
 * `resolve` turns what it imports (ajv's runtime helpers by package path, formats.js by absolute
 * path) into specifiers the importing side can resolve.
 */
export function precompiledModuleSource(resolve: (specifier: string) => string): string {
  const formatsModule = resolve(fileURLToPath(new URL('./formats.js', import.meta.url)));
  const a = makeAjv(false, ajvLib()._`__vlFormats`);
  const names: Record<string, string> = {};
  for (const k of KINDS) {
    a.addSchema(effectiveSchema(k.kind), k.kind);
    names[k.kind] = k.kind;
  }
  const imports = new Map<string, string>();
  const standalone = requireCjs('ajv/dist/standalone/index.js') as typeof standaloneModule;
  const code = standalone.default(a, names).replace(/require\("([^"]+)"\)/g, (_m, spec: string) => {
    if (!imports.has(spec)) imports.set(spec, `__vlRequire${imports.size}`);
    return imports.get(spec)!;
  });
  const table = KINDS.map((k) => {
    const hash = sha256(readFileSync(join(crdDir(), k.crdFile)));
    return `  ${JSON.stringify(k.kind)}: { crdSha256: ${JSON.stringify(hash)}, validate: ${k.kind} },`;
  });
  return [
    `import { FORMATS as __vlFormats } from ${JSON.stringify(formatsModule)};`,
    ...[...imports].map(([spec, id]) => `import ${id} from ${JSON.stringify(resolve(spec.endsWith('.js') ? spec : `${spec}.js`))};`),
    code.replace(/^"use strict";/, ''),
    'export const PRECOMPILED = {',
    ...table,
    '};',
    '',
  ].join('\n');
}

export type SchemaError = ErrorObject;
