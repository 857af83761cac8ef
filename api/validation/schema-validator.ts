// Compiles each kind's CRD schema (crds/<kind>.yaml) with ajv, once per process and only when
// the kind is first validated (ajv compilation costs milliseconds per kind; the CLI stays fast).
//
// What the compiled validator adds to the CRD text, and why:
// - `metadata` gets METADATA_SCHEMA (CRDs leave it as a bare object, as in Kubernetes).
// - Every object schema that lists `properties` (and does not set additionalProperties or
//   x-kubernetes-preserve-unknown-fields) rejects unknown fields: Kubernetes would prune them
//   silently; our contract is that unknown fields are errors.
// - `default` values are applied (useDefaults), nested ones too (a `default: {}` parent first).

import AjvModule from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { loadCrd, type OpenApiSchema } from './crd-files.js';
import { METADATA_SCHEMA } from './metadata-schema.js';

const Ajv = AjvModule.default;
type AjvInstance = InstanceType<typeof Ajv>;

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const IPV4 = /^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

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
function makeAjv(validateSchema: boolean): AjvInstance {
  const a = new Ajv({
    validateSchema,
    allErrors: true,
    useDefaults: true,
    verbose: true,
    strict: true,
    strictTypes: false,
    strictRequired: false, // oneOf branches name fields of the parent (OSTemplate image)
    formats: {
      'date-time': { type: 'string', validate: (s: string) => RFC3339.test(s) && !Number.isNaN(Date.parse(s)) },
      ipv4: { type: 'string', validate: (s: string) => IPV4.test(s) },
    },
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
    v = getAjv().compile(effectiveSchema(kind));
    compiled.set(kind, v);
  }
  return v;
}

export type SchemaError = ErrorObject;
