// Validators compiled ahead of time. In the sources (tsx) and the tsc build this table is empty
// and every kind is compiled with ajv on first use. The vcctl bundle (hack/build-cli.ts) replaces
// this module with ajv standalone code generated from the CRDs at build time
// (precompiledModuleSource in schema-validator.ts), so a fresh `vcctl apply` compiles nothing.
//
// Each entry carries the SHA-256 of the CRD file it was generated from: schema-validator.ts uses
// it only while the CRD file it would read at run time is byte-identical (a CRD edited or
// replaced after the build, or VIRTUALINUX_CRDS_DIR pointing elsewhere, falls back to compiling).

import type { ValidateFunction } from 'ajv';

export interface PrecompiledValidator {
  /** SHA-256 (hex) of the CRD file's bytes the validator was generated from. */
  crdSha256: string;
  validate: ValidateFunction;
}

/** By kind (e.g. VirtualCluster). Mutable only so tests can install a generated table. */
export const PRECOMPILED: Record<string, PrecompiledValidator> = {};
