// Validation and defaulting derived from the CRDs in crds/. See validate-object.ts.
export { validateObject, formatPath, issuesFromAjv } from './validate-object.js';
export type { JsonPath, ValidationIssue, ValidationResult } from './validate-object.js';
export { loadCrd, crdDir } from './crd-files.js';
export type { CrdInfo, OpenApiSchema } from './crd-files.js';
export { DNS1123_LABEL } from './metadata-schema.js';
