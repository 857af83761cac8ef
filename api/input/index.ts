// Manifest input: read FILE|DIR|- (size-capped), parse multi-document YAML safely, validate and
// default against the CRDs. Used by vcctl and by the GitOps sync.
export { loadManifests, loadManifestText } from './load-manifests.js';
export type { LoadOptions, Manifest, ManifestSource } from './load-manifests.js';
export { ManifestError, formatIssue } from './issues.js';
export type { InputIssue } from './issues.js';
export { parseDocuments, MAX_ALIAS_COUNT } from './parse-documents.js';
export type { ParsedDocument } from './parse-documents.js';
export { displayPath, isReadByWalk, listFiles, listManifestFiles, readSource, DEFAULT_MAX_FILE_BYTES, STDIN_NAME } from './read-sources.js';
export type { ListedFile, ReadOptions, SourceText } from './read-sources.js';
